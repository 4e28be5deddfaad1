/**
 * The SSH activities against a real sshd (run as the postgres OS user on 127.0.91.1), with
 * pinned host keys, a real service script, maintenance mode with a real HTTP app, and the
 * command traffic driver. Everything is torn down in `after`.
 */
import { loadTools } from '../../src/tools';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createActivities, type Activities } from '../../src/activities';
import { Daemon, freePort, giveToRunAs, rejection, removeDir, run, RUN_AS, tempDir, topology, waitFor, canConnect } from './activities-harness';

const SSH_ADDR = '127.0.91.1';
const APP_ADDR = '127.0.91.2';

let dir: string;
let sshd: Daemon | undefined;
let app: Server | undefined;
let sshPort: number;
let act: Activities;
let edFingerprint: string;

async function keygen(type: 'ed25519' | 'rsa' | 'ecdsa', file: string): Promise<string> {
  await run(loadTools().sshKeygen, ['-q', '-t', type, '-N', '', '-C', '', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

async function startSshd(): Promise<Daemon> {
  const d = Daemon.start('sshd', loadTools().sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { asRunAs: true });
  await waitFor('sshd to listen', async () => canConnect(SSH_ADDR, sshPort)).catch((err) => {
    throw new Error(`${err}\n${d.output}`);
  });
  return d;
}

const flag = () => join(dir, 'maintenance.flag');
const pidFile = () => join(dir, 'svc.pid');
const trafficFile = () => join(dir, 'traffic');

before(async () => {
  dir = tempDir('ssh');
  sshPort = await freePort(SSH_ADDR);
  const appPort = await freePort(APP_ADDR);

  const hostEd = await keygen('ed25519', join(dir, 'host_ed25519'));
  const hostRsa = await keygen('rsa', join(dir, 'host_rsa'));
  const otherHost = await keygen('ed25519', join(dir, 'other_host'));
  const clientPub = await keygen('ed25519', join(dir, 'client'));
  await keygen('ed25519', join(dir, 'stranger'));
  const ecdsa = await keygen('ecdsa', join(dir, 'ecdsa_not_served'));
  edFingerprint = (await run(loadTools().sshKeygen, ['-lf', join(dir, 'host_ed25519.pub')])).stdout.split(' ')[1];
  writeFileSync(join(dir, 'authorized_keys'), `${clientPub}\n`);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `ListenAddress ${SSH_ADDR}:${sshPort}`,
      `HostKey ${join(dir, 'host_ed25519')}`,
      `HostKey ${join(dir, 'host_rsa')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      `AllowUsers ${RUN_AS}`,
      '',
    ].join('\n'),
  );
  // A service with start/stop/status by pid file; the daemon is a sleep in its own session.
  writeFileSync(
    join(dir, 'svc.sh'),
    `#!/bin/sh
pidf='${pidFile()}'
alive() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
case "$1" in
  start) alive && exit 0; setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > "$pidf" ;;
  stop) alive && kill "$(cat "$pidf")"; rm -f "$pidf" ;;
  status) alive ;;
  *) exit 2 ;;
esac
`,
  );
  chmodSync(join(dir, 'svc.sh'), 0o755);
  for (const f of ['host_ed25519', 'host_rsa', 'other_host', 'client', 'stranger', 'authorized_keys', 'sshd_config', 'svc.sh']) giveToRunAs(join(dir, f));
  for (const f of ['host_ed25519.pub', 'host_rsa.pub', 'other_host.pub', 'client.pub', 'stranger.pub']) giveToRunAs(join(dir, f));
  sshd = await startSshd();

  // The site's app: 503 while the maintenance flag exists, 200 otherwise.
  app = createServer((_req, res) => {
    res.statusCode = existsSync(flag()) ? 503 : 200;
    res.end(res.statusCode === 200 ? 'ok' : 'maintenance');
  });
  await new Promise<void>((r) => app?.listen(appPort, APP_ADDR, r));

  const host = (hostKey: string) => ({ site: 'dc1', address: SSH_ADDR, port: sshPort, hostKey });
  const cluster = (privateKeyFile: string) => ({
    preferredPrimary: 'dc1',
    sites: {
      dc1: {
        app: { url: `http://${APP_ADDR}:${appPort}/health` },
        maintenance: { host: 'app1', on: ['touch', flag()], off: ['rm', '-f', flag()], status: ['test', '-e', flag()] },
        services: {
          detector: { host: 'app1', start: [join(dir, 'svc.sh'), 'start'], stop: [join(dir, 'svc.sh'), 'stop'], status: [join(dir, 'svc.sh'), 'status'] },
          broken: { host: 'app1', start: ['true'], stop: ['true'], status: ['false'] },
        },
      },
      dc2: {},
    },
    hosts: {
      app1: host(hostEd),
      'app1-rsa': host(hostRsa),
      'app1-wrongkey': host(otherHost),
      'app1-ecdsa': { ...host(ecdsa), site: 'dc2' },
    },
    ssh: { user: RUN_AS, privateKey: { file: privateKeyFile }, connectTimeoutSeconds: 3 },
    postgres: {
      user: 'postgres',
      replication: { user: 'postgres' },
      nodes: {
        db1: { site: 'dc1', sshHost: 'app1', host: '127.0.91.11', port: 5432, dataDir: '/tmp/x', binDir: '/usr/bin', slot: 'db1' },
        db2: { site: 'dc2', sshHost: 'app1', host: '127.0.91.12', port: 5433, dataDir: '/tmp/x', binDir: '/usr/bin', slot: 'db2' },
      },
    },
    traffic: [
      {
        kind: 'command' as const,
        name: 'switch',
        host: 'app1',
        move: ['sh', '-c', 'printf "%s\\n%s\\n" "$1" "$2" > "$3"', 'move', '{site}', '{address}:{port}', trafficFile()],
        read: ['head', '-n', '1', trafficFile()],
        timeoutSeconds: 10,
      },
    ],
  });
  const top = topology({ version: 1, clusters: { main: cluster(join(dir, 'client')), stranger: cluster(join(dir, 'stranger')) } });
  act = createActivities({ topology: () => top, timeouts: { verifyMs: 2_000 } });
});

after(async () => {
  // The service's sleep runs in its own session: stop it through its own script.
  if (existsSync(pidFile())) await run('sh', [join(dir, 'svc.sh'), 'stop'], { asRunAs: true, allowFail: true });
  await sshd?.stop();
  await new Promise((r) => (app ? app.close(r) : r(undefined)));
  removeDir(dir);
});

describe('sshCheck and runRemote with pinned host keys', () => {
  it('accepts the pinned ed25519 key and says which key matched', async () => {
    const c = await act.sshCheck({ cluster: 'main', host: 'app1' });
    assert.equal(c.outcome, 'ok', c.detail);
    assert.equal(c.ok, true);
    assert.ok(c.detail.includes(edFingerprint), `${c.detail} names ${edFingerprint}`);
  });

  it('accepts a pinned RSA key although the server prefers to show its ed25519 key', async () => {
    const c = await act.sshCheck({ cluster: 'main', host: 'app1-rsa' });
    assert.equal(c.outcome, 'ok', c.detail);
  });

  it('refuses a server whose key differs from the pinned one, naming both fingerprints', async () => {
    const pinned = (await run(loadTools().sshKeygen, ['-lf', join(dir, 'other_host.pub')])).stdout.split(' ')[1];
    const c = await act.sshCheck({ cluster: 'main', host: 'app1-wrongkey' });
    assert.equal(c.ok, false);
    assert.equal(c.outcome, 'host-key-mismatch');
    assert.equal(c.detail, `host key mismatch for app1-wrongkey (${SSH_ADDR}:${sshPort}): presented ${edFingerprint} pinned ${pinned}`);
    const e = await rejection(act.runRemote({ cluster: 'main', host: 'app1-wrongkey', argv: ['touch', join(dir, 'must-not-exist')] }));
    assert.equal(e.type, 'HostKeyMismatch');
    assert.equal(e.nonRetryable, true);
    assert.equal(existsSync(join(dir, 'must-not-exist')), false);
  });

  it('refuses a server that has no key of the pinned type', async () => {
    const c = await act.sshCheck({ cluster: 'main', host: 'app1-ecdsa' });
    assert.equal(c.outcome, 'host-key-mismatch', c.detail);
    assert.match(c.detail, /^host key mismatch for app1-ecdsa/);
  });

  it('reports a key the server does not authorize as auth-failed (non-retryable for actions)', async () => {
    const c = await act.sshCheck({ cluster: 'stranger', host: 'app1' });
    assert.equal(c.outcome, 'auth-failed', c.detail);
    const e = await rejection(act.runRemote({ cluster: 'stranger', host: 'app1', argv: ['true'] }));
    assert.equal(e.type, 'SshAuthFailed');
  });

  it('runs an argument vector exactly, whatever it contains', async () => {
    const args = ["it's", '$(id)', '`id`', 'a  b', '', 'line\nbreak', '*'];
    const r = await act.runRemote({ cluster: 'main', host: 'app1', argv: ['printf', '[%s]', ...args] });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, args.map((a) => `[${a}]`).join(''));
  });

  it('returns a non-zero exit with both output streams instead of throwing', async () => {
    const r = await act.runRemote({ cluster: 'main', host: 'app1', argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    assert.deepEqual([r.exitCode, r.stdout, r.stderr, r.timedOut], [3, 'out\n', 'err\n', false]);
  });

  it('cuts off a command at its timeout', async () => {
    const t0 = Date.now();
    // (This sshd runs unprivileged and ignores the KILL signal request, so the remote sleep
    // outlives the connection: keep it short.)
    const r = await act.runRemote({ cluster: 'main', host: 'app1', argv: ['sleep', '8'], timeoutSeconds: 1 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.ok(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms`);
  });
});

describe('services', () => {
  it('start is idempotent and verified; stop likewise', async () => {
    assert.equal((await act.serviceStatus({ cluster: 'main', site: 'dc1', service: 'detector' })).running, false);
    const s1 = await act.serviceStart({ cluster: 'main', site: 'dc1', service: 'detector' });
    assert.deepEqual([s1.running, s1.changed], [true, true]);
    const pid = readFileSync(pidFile(), 'utf8').trim();
    assert.doesNotThrow(() => process.kill(Number(pid), 0), 'the service process runs');
    const s2 = await act.serviceStart({ cluster: 'main', site: 'dc1', service: 'detector' });
    assert.deepEqual([s2.running, s2.changed], [true, false]);
    assert.equal(readFileSync(pidFile(), 'utf8').trim(), pid, 'a second start did not start a second process');
    assert.equal((await act.serviceStatus({ cluster: 'main', site: 'dc1', service: 'detector' })).running, true);

    const s3 = await act.serviceStop({ cluster: 'main', site: 'dc1', service: 'detector' });
    assert.deepEqual([s3.running, s3.changed], [false, true]);
    await waitFor('the service process to end', async () => {
      try {
        process.kill(Number(pid), 0);
        return undefined;
      } catch {
        return true;
      }
    });
    const s4 = await act.serviceStop({ cluster: 'main', site: 'dc1', service: 'detector' });
    assert.deepEqual([s4.running, s4.changed], [false, false]);
  });

  it('throws when the status still disagrees after acting', async () => {
    const e = await rejection(act.serviceStart({ cluster: 'main', site: 'dc1', service: 'broken' }));
    assert.notEqual(e.nonRetryable, true);
    assert.match(e.message, /service "broken" at site "dc1" is still stopped after start/);
  });

  it('names unknown services and what exists', async () => {
    const e = await rejection(act.serviceStatus({ cluster: 'main', site: 'dc1', service: 'nope' }));
    assert.equal(e.type, 'ConfigError');
    assert.match(e.message, /unknown service "nope" at site "dc1" of cluster "main"; known: "detector", "broken"/);
  });
});

describe('maintenance mode', () => {
  it('reads the flag and the app, turns it on and off idempotently', async () => {
    const m0 = await act.maintenanceStatus({ cluster: 'main', site: 'dc1' });
    assert.deepEqual([m0.on, m0.httpStatus], [false, 200]);
    const m1 = await act.maintenanceSet({ cluster: 'main', site: 'dc1', on: true });
    assert.deepEqual([m1.on, m1.httpStatus, m1.changed], [true, 503, true]);
    assert.equal(existsSync(flag()), true);
    const m2 = await act.maintenanceSet({ cluster: 'main', site: 'dc1', on: true });
    assert.equal(m2.changed, false);
    assert.deepEqual(
      [(await act.maintenanceStatus({ cluster: 'main', site: 'dc1' })).on, (await act.maintenanceStatus({ cluster: 'main', site: 'dc1' })).httpStatus],
      [true, 503],
    );
    const m3 = await act.maintenanceSet({ cluster: 'main', site: 'dc1', on: false });
    assert.deepEqual([m3.on, m3.httpStatus, m3.changed], [false, 200, true]);
    assert.equal(existsSync(flag()), false);
  });

  it('is a ConfigError on a site without maintenance commands', async () => {
    const e = await rejection(act.maintenanceSet({ cluster: 'main', site: 'dc2', on: true }));
    assert.equal(e.type, 'ConfigError');
  });
});

describe('command traffic driver', () => {
  it('moves with placeholders filled in, verifies by reading back, and is a no-op the second time', async () => {
    writeFileSync(trafficFile(), 'dc1\n');
    giveToRunAs(trafficFile());
    const r0 = await act.trafficRead({ cluster: 'main', driver: 'switch' });
    assert.equal(r0.site, 'dc1', r0.detail);
    const r1 = await act.trafficMove({ cluster: 'main', driver: 'switch', site: 'dc2' });
    assert.deepEqual([r1.site, r1.changed], ['dc2', true]);
    assert.equal(readFileSync(trafficFile(), 'utf8'), 'dc2\n127.0.91.12:5433\n');
    const r2 = await act.trafficMove({ cluster: 'main', driver: 'switch', site: 'dc2' });
    assert.deepEqual([r2.site, r2.changed], ['dc2', false]);
  });

  it('reads an unknown answer as no site', async () => {
    writeFileSync(trafficFile(), 'dc9\n');
    const r = await act.trafficRead({ cluster: 'main', driver: 'switch' });
    assert.equal(r.site, null);
    assert.match(r.detail, /"dc9", which is no site/);
  });
});

describe('with sshd stopped', () => {
  before(async () => {
    await sshd?.stop();
  });

  it('status reads report the host unreachable as data', async () => {
    const c = await act.sshCheck({ cluster: 'main', host: 'app1' });
    assert.equal(c.outcome, 'unreachable', c.detail);
    assert.match(c.detail, /ECONNREFUSED/);
    const s = await act.serviceStatus({ cluster: 'main', site: 'dc1', service: 'detector' });
    assert.equal(s.running, null);
    const m = await act.maintenanceStatus({ cluster: 'main', site: 'dc1' });
    assert.deepEqual([m.on, m.httpStatus], [null, 200]);
    const t = await act.trafficRead({ cluster: 'main', driver: 'switch' });
    assert.equal(t.site, null);
  });

  it('actions throw retryable errors', async () => {
    const e = await rejection(act.runRemote({ cluster: 'main', host: 'app1', argv: ['true'] }));
    assert.notEqual(e.nonRetryable, true);
    assert.match(e.message, /cannot connect to app1 \(127\.0\.91\.1:\d+\)/);
    const e2 = await rejection(act.serviceStart({ cluster: 'main', site: 'dc1', service: 'detector' }));
    assert.notEqual(e2.nonRetryable, true);
  });
});
