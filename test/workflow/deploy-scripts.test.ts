/**
 * The deployment's scripts against a real Temporal dev server (the Temporal CLI that
 * scripts/setup.sh installs): deploy/temporal/setup-namespace.sh registers the namespace and the
 * search attributes idempotently and refuses a wrong type; deploy/worker-healthcheck.js is healthy
 * only while this host's worker polls. The files themselves are linted in test/unit/compose.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/lib/search-attributes';

const ROOT = resolve(__dirname, '../..');

function temporalCli(): string | null {
  const file = join(ROOT, '.tools/paths.json');
  if (!existsSync(file)) return null;
  const p = (JSON.parse(readFileSync(file, 'utf8')) as { temporal?: string }).temporal;
  return p && existsSync(p) ? p : null;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? ok(addr.port) : fail(new Error('no port'))));
    });
  });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  return new Promise((ok) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      ok({ code, out });
    });
  });
}

describe('deploy scripts against a real Temporal dev server', () => {
  const cli = temporalCli();
  let server: ChildProcess | undefined;
  let dir = '';
  let address = '';
  const namespace = 'compose-test';
  const env = () => ({ ...process.env, PATH: `${dirname(cli as string)}:${process.env.PATH ?? ''}`, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace });

  before(async () => {
    if (!cli) return;
    dir = mkdtempSync(join(tmpdir(), 'switchyard-test-compose-'));
    const [grpc, http, metrics] = [await freePort(), await freePort(), await freePort()];
    address = `127.0.0.1:${grpc}`;
    server = spawn(
      cli,
      [
        'server',
        'start-dev',
        '--headless',
        '--ip',
        '127.0.0.1',
        '--port',
        String(grpc),
        '--http-port',
        String(http),
        '--metrics-port',
        String(metrics),
        '--db-filename',
        join(dir, 'temporal.db'),
        '--log-level',
        'error',
      ],
      { stdio: 'ignore' },
    );
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((ok) => server?.once('exit', ok));
      server.kill('SIGTERM');
      await Promise.race([exited, new Promise((ok) => setTimeout(ok, 10_000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('setup-namespace.sh creates the namespace and the search attributes, and a second run changes nothing', async (t) => {
    if (!cli) return t.skip('the Temporal CLI is not installed (run scripts/setup.sh)');
    const script = join(ROOT, 'deploy/temporal/setup-namespace.sh');
    const first = await run('sh', [script], env());
    assert.equal(first.code, 0, first.out);
    for (const k of SEARCH_ATTRIBUTES) assert.match(first.out, new RegExp(`creating search attribute ${k.name} \\(Keyword\\)`));
    const list = await run(cli as string, ['operator', 'search-attribute', 'list', '--address', address, '--namespace', namespace, '--output', 'json'], env());
    assert.equal(list.code, 0, list.out);
    const custom = (JSON.parse(list.out) as { customAttributes?: Record<string, string> }).customAttributes ?? {};
    for (const k of SEARCH_ATTRIBUTES) assert.match(String(custom[k.name]), /KEYWORD|Keyword/, `${k.name} in ${list.out}`);
    const second = await run('sh', [script], env());
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /namespace compose-test exists/);
    assert.doesNotMatch(second.out, /creating/);
  });

  it('setup-namespace.sh fails when an attribute exists with another type', async (t) => {
    if (!cli) return t.skip('the Temporal CLI is not installed (run scripts/setup.sh)');
    const ns = 'compose-test-wrong-type';
    const make = await run(cli as string, ['operator', 'namespace', 'create', '--address', address, '--namespace', ns], env());
    assert.equal(make.code, 0, make.out);
    let made = { code: null as number | null, out: '' };
    for (let i = 0; i < 20 && made.code !== 0; i++) {
      made = await run(
        cli as string,
        ['operator', 'search-attribute', 'create', '--address', address, '--namespace', ns, '--name', 'SwitchyardStep', '--type', 'Text'],
        env(),
      );
      if (made.code !== 0) await new Promise((ok) => setTimeout(ok, 500));
    }
    assert.equal(made.code, 0, made.out);
    const r = await run('sh', [join(ROOT, 'deploy/temporal/setup-namespace.sh')], { ...env(), TEMPORAL_NAMESPACE: ns });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /search attribute SwitchyardStep is not registered as Keyword/);
  });

  it('worker-healthcheck.js is healthy only while this host polls the task queue', async (t) => {
    if (!cli) return t.skip('the Temporal CLI is not installed (run scripts/setup.sh)');
    const check = join(ROOT, 'deploy/worker-healthcheck.js');
    const before = await run(process.execPath, [check], env(), 30_000);
    assert.equal(before.code, 1, before.out);
    assert.match(before.out, /unhealthy: no workflow poller from host .* on task queue switchyard \(namespace compose-test\)/);

    const { NativeConnection, Worker } = await import('@temporalio/worker');
    const { workflowBundle } = await import('../support/temporal');
    const connection = await NativeConnection.connect({ address });
    const worker = await Worker.create({
      connection,
      namespace,
      taskQueue: 'switchyard',
      workflowBundle: await workflowBundle(),
      activities: { noop: async () => undefined },
    });
    const running = worker.run();
    try {
      let last = { code: null as number | null, out: '' };
      for (let i = 0; i < 20; i++) {
        last = await run(process.execPath, [check], env(), 30_000);
        if (last.code === 0) break;
        await new Promise((ok) => setTimeout(ok, 500));
      }
      assert.equal(last.code, 0, last.out);
      assert.match(last.out, /^healthy/);
    } finally {
      worker.shutdown();
      await running;
      await connection.close();
    }
    const nowhere = await run(process.execPath, [check], { ...env(), TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` }, 30_000);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.out, /unhealthy: cannot ask Temporal/);
  });
});
