/**
 * TLS and client certificates to Temporal (issue 15), for real: `temporal server start-dev` has no
 * TLS of its own, so HAProxy terminates TLS in front of it and asks every client for a
 * certificate signed by the test CA (`verify required`), as a gateway or an mTLS-only frontend
 * would. The certificates are made here with openssl: a CA, the proxy's certificate for
 * localhost and 127.0.0.1, a client certificate, and a second CA nobody trusts with a client
 * certificate of its own.
 *
 * Through the proxy: a worker (src/worker.ts's createWorker, its target from a topology file's
 * `temporal.tls`) and clients (their target from the CLI's flags, and from a `temporal.tls`
 * section) run a workflow end to end; a client without the CA, one without a certificate and one
 * with the unrelated CA's certificate are refused, each saying why (src/temporal-connection.ts's
 * connectClient; a worker without a certificate too); and `switchyard status` works with the TLS
 * flags and fails without a client certificate, saying the server requires one.
 *
 * The proxy is started with `alpn h2`: gRPC is HTTP/2, and the worker's Rust connection refuses a
 * TLS server that does not agree on h2 (H2NotNegotiated); grpc-js alone would not notice.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { parse, stringify } from 'yaml';
import { createLogger } from '../../src/logging';
import { describeTarget, resolveTemporal } from '../../src/temporal-access';
import { connectClient, targetClient } from '../../src/temporal-connection';
import type { TemporalTarget } from '../../src/temporal-target';
import { loadTools } from '../../src/tools';
import { createWorker, installRuntime, workerSettings } from '../../src/worker';
import { canConnect, Daemon, freePort, waitFor } from '../integration/activities-harness';
import { startTestTemporal } from '../support/temporal';
import type { acquireTwice } from './fixtures/lock-workflows';

const REPO = join(__dirname, '../..');
const BIN = join(REPO, 'bin', 'switchyard.js');
const EXAMPLE = join(REPO, 'examples', 'switchyard.yaml');
const HOST = '127.0.0.1';
/** How long a refused client waits before it gives up (grpc-js waits this long whatever the reason). */
const REFUSED_CONNECT_TIMEOUT: Duration = '2 seconds';

/** The files openssl made; every path is inside the test's temp dir. */
interface Pki {
  ca: string;
  serverPem: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
  strangerCert: string;
  strangerKey: string;
}

/** EC P-256 throughout: a few milliseconds per key. */
function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = (f: string) => join(dir, f);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string, cn: string) =>
    ssl(
      'req',
      '-x509',
      ...newKey,
      '-keyout',
      p(`${name}.key`),
      '-out',
      p(`${name}.pem`),
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const leaf = (name: string, cn: string, caName: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), ext);
    ssl('req', '-new', ...newKey, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl(
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p(`${caName}.pem`),
      '-CAkey',
      p(`${caName}.key`),
      '-set_serial',
      `0x${randomUUID().replace(/-/g, '').slice(0, 16)}`,
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
      '-out',
      p(`${name}.crt`),
    );
  };
  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  ca('ca', 'switchyard test CA');
  ca('other-ca', 'an unrelated CA');
  leaf(
    'server',
    'localhost',
    'ca',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  leaf('client', 'switchyard-worker', 'ca', clientExt);
  leaf('stranger', 'someone else', 'other-ca', clientExt);
  // HAProxy's `crt`: the certificate and its key in one file.
  writeFileSync(p('server.pem'), Buffer.concat([readFileSync(p('server.crt')), readFileSync(p('server.key'))]));
  return {
    ca: p('ca.pem'),
    serverPem: p('server.pem'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.pem'),
    strangerCert: p('stranger.crt'),
    strangerKey: p('stranger.key'),
  };
}

function haproxyConfig(pki: Pki, listen: number, temporal: string): string {
  return `global
    maxconn 256
defaults
    mode tcp
    timeout connect 3s
    # Longer than a worker's long poll (70 s), so the proxy never cuts one.
    timeout client 10m
    timeout server 10m
frontend temporal_tls
    bind ${HOST}:${listen} ssl crt ${pki.serverPem} ca-file ${pki.ca} verify required alpn h2
    default_backend temporal
backend temporal
    server temporal ${temporal}
`;
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI processes still running: killed in `after` whatever happened. */
const clis = new Set<ChildProcess>();

/**
 * `switchyard <args>` as an operator's shell runs it: no topology (SWITCHYARD_CONFIG names a file
 * that does not exist, so neither a running sandbox's nor ./switchyard.yaml is used) and none of
 * the caller's TEMPORAL_* settings, so the flags are all it has.
 */
function cli(args: string[], dir: string, timeoutMs = 40_000): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, SWITCHYARD_CONFIG: join(dir, 'no-topology.yaml') };
  for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_') || k === 'SWITCHYARD_DEBUG' || k === 'SWITCHYARD_USER') delete env[k];
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], { argv0: 'switchyard-test-cli', cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    clis.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (e) => {
      clearTimeout(timer);
      clis.delete(proc);
      reject(e);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      clis.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
}
const shown = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

describe('Temporal behind a TLS proxy that requires client certificates (mTLS)', () => {
  let dir: string | undefined;
  let pki: Pki;
  let env: TestWorkflowEnvironment | undefined;
  let haproxy: Daemon | undefined;
  let proxy: string;
  let worker: { worker: Worker; close: () => Promise<void> } | undefined;
  let running: Promise<void> | undefined;
  let workerTarget: TemporalTarget;
  const taskQueue = `tls-${randomUUID()}`;
  const connections: Connection[] = [];
  // Should this process end without `after` (an uncaught error), HAProxy goes with it; stopped
  // (the test runner's SIGTERM on Ctrl-C or a timeout), everything is taken down first.
  const killProxy = () => haproxy?.signal('SIGKILL');
  const onSignal = (sig: NodeJS.Signals) => {
    killProxy();
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  async function cleanup(): Promise<void> {
    for (const p of clis) p.kill('SIGKILL');
    if (worker) {
      if (running) {
        worker.worker.shutdown();
        await running.catch(() => undefined);
      }
      await worker.close().catch(() => undefined);
      worker = undefined;
    }
    await Promise.all(connections.splice(0).map((c) => c.close().catch(() => undefined)));
    await haproxy?.stop('SIGTERM', 5000);
    process.off('exit', killProxy);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await env?.teardown();
    env = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  }

  before(async () => {
    try {
      // Before anything starts the SDK's runtime (the dev server does): its own lines at warn too.
      const logger = createLogger({ name: 'tls-test-worker', level: 'warn' });
      installRuntime(logger);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      dir = mkdtempSync(join(tmpdir(), 'switchyard-test-temporal-tls-'));
      pki = makePki(dir);
      let bundle: WorkflowBundleWithSourceMap;
      [env, bundle] = await Promise.all([
        startTestTemporal(),
        bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/lock-workflows'), logger: new DefaultLogger('WARN') }),
      ]);
      const port = await freePort(HOST);
      proxy = `${HOST}:${port}`;
      const cfg = join(dir, 'haproxy.cfg');
      writeFileSync(cfg, haproxyConfig(pki, port, env.address));
      process.on('exit', killProxy);
      haproxy = Daemon.start('haproxy', loadTools().haproxy, ['-db', '-f', cfg], { cwd: dir });
      await waitFor(`HAProxy on ${proxy}`, async () => {
        if (!haproxy!.running) throw new Error(`HAProxy exited: ${haproxy!.output}`);
        return canConnect(HOST, port, 500);
      });

      // The worker as an operator configures it: the topology's temporal.tls, file references.
      const top = parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;
      top.temporal = { tls: { serverCa: { file: pki.ca }, clientCert: { file: pki.clientCert }, clientKey: { file: pki.clientKey } } };
      const topologyPath = join(dir, 'switchyard.yaml');
      writeFileSync(topologyPath, stringify(top));
      workerTarget = (await workerSettings(topologyPath, { address: proxy }, {})).target;
      worker = await createWorker({
        configPath: topologyPath,
        target: workerTarget,
        logger,
        taskQueue,
        workflowBundle: bundle,
      });
      running = worker.worker.run();
    } catch (err) {
      await cleanup();
      throw err;
    }
  });
  after(cleanup);

  /** A client connection to the target that the test closes at the end. */
  async function connect(target: TemporalTarget, connectTimeout: Duration = '10 seconds'): Promise<Connection> {
    const c = await connectClient(target, { connectTimeout });
    connections.push(c);
    return c;
  }

  /** acquireTwice: its lock activities reach Temporal again, on the worker's own client connection. */
  async function runWorkflow(target: TemporalTarget): Promise<{ workflowId: string; result: Awaited<ReturnType<typeof acquireTwice>> }> {
    const client = targetClient(target, await connect(target));
    const workflowId = `tls-${randomUUID()}`;
    const result = await client.workflow.execute<typeof acquireTwice>('acquireTwice', {
      taskQueue,
      workflowId,
      args: [{ cluster: `tls-${randomUUID().slice(0, 8)}` }],
    });
    return { workflowId, result };
  }

  it('a worker (topology temporal.tls) and a client (the CLI flags) with the CA and a client certificate run a workflow end to end', async () => {
    assert.deepEqual(workerTarget.features, ['mTLS']);
    const target = await resolveTemporal({ address: proxy, tlsCaPath: pki.ca, tlsCertPath: pki.clientCert, tlsKeyPath: pki.clientKey }, undefined, {});
    assert.equal(describeTarget(target), `${proxy} (mTLS)`);
    assert.notEqual(proxy, env!.address, 'the client talks to the proxy, not to the dev server itself');
    const { result } = await runWorkflow(target);
    assert.deepEqual(result, { first: true, second: true, sameSince: true });
  });

  it('a client configured by a temporal.tls section (file references, server name) runs one too', async () => {
    const target = await resolveTemporal(
      { address: proxy },
      { tls: { serverCa: { file: pki.ca }, clientCert: { file: pki.clientCert }, clientKey: { file: pki.clientKey }, serverName: 'localhost' } },
      {},
    );
    assert.deepEqual(target.tls && target.tls !== true ? target.tls.serverNameOverride : null, 'localhost');
    const { result } = await runWorkflow(target);
    assert.deepEqual(result, { first: true, second: true, sameSince: true });
  });

  /** The SDK client's refusal, as connectClient reports it (every caller that connects through it). */
  async function refusal(target: TemporalTarget): Promise<string> {
    const err = await connect(target, REFUSED_CONNECT_TIMEOUT).then(
      () => assert.fail('the connection was accepted'),
      (e: unknown) => e as Error,
    );
    return err.message;
  }

  it("refuses a client without the CA (the system's roots only): the proxy's certificate is not trusted", async () => {
    const target = await resolveTemporal({ address: proxy, tls: true, tlsCertPath: pki.clientCert, tlsKeyPath: pki.clientKey }, undefined, {});
    const msg = await refusal(target);
    assert.match(
      msg,
      new RegExp(`^TLS handshake with ${proxy} failed: the server's certificate is not trusted \\(unable to verify the first certificate\\)`),
      msg,
    );
    assert.match(msg, /--tls-ca-path/);
  });

  it('refuses a client with the CA but no client certificate: the handshake ends in "certificate required"', async () => {
    const target = await resolveTemporal({ address: proxy, tlsCaPath: pki.ca }, undefined, {});
    assert.deepEqual(target.features, ['TLS']);
    const msg = await refusal(target);
    assert.match(msg, new RegExp(`^TLS handshake with ${proxy} failed: the server requires a client certificate \\(tlsv13 alert certificate required\\)`), msg);
    assert.match(msg, /--tls-cert-path and --tls-key-path/);
  });

  it("refuses a client certificate from another CA: the proxy answers 'unknown ca'", async () => {
    const target = await resolveTemporal({ address: proxy, tlsCaPath: pki.ca, tlsCertPath: pki.strangerCert, tlsKeyPath: pki.strangerKey }, undefined, {});
    assert.deepEqual(target.features, ['mTLS']);
    const msg = await refusal(target);
    assert.match(msg, new RegExp(`^TLS handshake with ${proxy} failed: the server refused the client certificate \\(tlsv1 alert unknown ca\\)`), msg);
  });

  /** One run of `switchyard status` with the CA and no client certificate (it waits out its 10 s connect timeout). */
  let noCert: Promise<CliResult> | undefined;
  const statusWithoutCert = () => (noCert ??= cli(['--address', proxy, '--tls-ca-path', pki.ca, 'status', `tls-${randomUUID()}`, '--json'], dir!));

  it('a worker without a client certificate refuses to start, saying the server requires one', async () => {
    void statusWithoutCert(); // its 10 s wait beside this one's
    const target = await resolveTemporal({ address: proxy, tlsCaPath: pki.ca }, undefined, {});
    const err = await createWorker({
      configPath: EXAMPLE,
      target,
      logger: createLogger({ name: 'tls-test-worker', level: 'silent' }),
      taskQueue: `${taskQueue}-refused`,
    }).then(
      (w) => (void w.close(), assert.fail('the worker started')),
      (e: unknown) => e as Error,
    );
    assert.match(
      err.message,
      new RegExp(`^TLS handshake with ${proxy} failed: the server requires a client certificate \\(tlsv13 alert certificate required\\)`),
      err.message,
    );
  });

  it('switchyard status works with the TLS flags, and without a client key says which flag is missing', async () => {
    const { workflowId } = await runWorkflow(workerTarget);
    const tlsFlags = ['--address', proxy, '--tls-ca-path', pki.ca, '--tls-cert-path', pki.clientCert, '--tls-key-path', pki.clientKey];
    // --tls-key-path without --tls-cert-path (beside it): a usage error before anything is sent.
    const [ok, half] = await Promise.all([
      cli([...tlsFlags, 'status', workflowId, '--json'], dir!),
      cli(['--address', proxy, '--tls-ca-path', pki.ca, '--tls-key-path', pki.clientKey, 'status', workflowId, '--json'], dir!),
    ]);
    assert.equal(ok.code, 0, shown(ok));
    const status = JSON.parse(ok.stdout) as { workflowId: string; type: string; status: string; result: unknown; succeeded: boolean };
    assert.deepEqual(
      { workflowId: status.workflowId, type: status.type, status: status.status, result: status.result, succeeded: status.succeeded },
      { workflowId, type: 'acquireTwice', status: 'COMPLETED', result: { first: true, second: true, sameSince: true }, succeeded: true },
    );

    assert.equal(half.code, 2, shown(half));
    assert.match(half.stderr, /TLS client certificate and key go together: give both --tls-cert-path and --tls-key-path/, shown(half));
    assert.equal(half.stdout, '');
  });

  it('switchyard status without a client certificate fails and names the address', async () => {
    const r = await statusWithoutCert();
    assert.equal(r.code, 1, shown(r));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^switchyard: cannot reach Temporal at ${proxy}: `, 'm'), shown(r));
  });

  it('switchyard status without a client certificate says the server requires one', async () => {
    const r = await statusWithoutCert();
    assert.match(r.stderr, /the server requires a client certificate .*--tls-cert-path and --tls-key-path/, shown(r));
  });
});
