/**
 * Connecting and running commands over SSH (ssh/exec.ts, ssh/host-key.ts), through sshCheck,
 * runRemote and the service activities, with a fake transport: the pinned-key check itself (the
 * fake presents a key to the real verifier), how connection failures are classified, what the
 * transport is asked for, output limits, and that sessions are closed however a command ends.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ed25519KeyPair } from '../support/ssh-keys';
import { createActivities, MAX_OUTPUT_CHARS, type RemoteCommandResult, type SshSessionLike } from '../../src/activities';
import { fingerprint, hostKeyAlgorithms, parsePinnedKey } from '../../src/activities/ssh/host-key';
import type { Topology } from '../../src/topology/schema';
import { fakeSsh, keyBlob as blob, type FakeReply } from '../support/fake-ssh';
import { buildTopology } from '../support/topology';

const client = ed25519KeyPair();
const real = ed25519KeyPair();
const impostor = ed25519KeyPair();

function topology(hostKey = real.public): Topology {
  return buildTopology({
    sites: {
      dc1: {
        services: { web: { host: 'app', start: ['svc', 'start'], stop: ['svc', 'stop'], status: ['svc', 'status'] } },
      },
      dc2: {},
    },
    hosts: {
      app: { site: 'dc1', address: '127.0.5.5', port: 2222, user: 'deploy', hostKey },
      h2: { site: 'dc2', address: '127.0.5.6', hostKey },
    },
    ssh: { connectTimeoutSeconds: 7 },
    postgres: {
      nodes: {
        a: { site: 'dc1', sshHost: 'app', host: '10.0.0.1', dataDir: '/d', binDir: '/b', slot: 'a' },
        b: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', dataDir: '/d', binDir: '/b', slot: 'b' },
      },
    },
  });
}

describe('pinned host keys', () => {
  it('fingerprints exactly as ssh-keygen -l prints them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-fp-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
      const pub = readFileSync(join(dir, 'k.pub'), 'utf8');
      const expected = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
      assert.equal(parsePinnedKey(pub).fingerprint, expected);
      assert.equal(fingerprint(blob(pub)), expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a pinned line whose key data is of another type than it says', () => {
    const rsaLabelled = `ssh-rsa ${real.public.split(' ')[1]}`;
    assert.throws(() => parsePinnedKey(rsaLabelled), { type: 'ConfigError' });
  });

  it("offers only the pinned key's algorithms, so the server shows the pinned key", () => {
    assert.deepEqual(hostKeyAlgorithms('ssh-ed25519'), ['ssh-ed25519']);
    assert.deepEqual(hostKeyAlgorithms('ssh-rsa'), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  });

  it("connects with the pinned key, the host's user, the private key and the configured timeout", async () => {
    const t = fakeSsh({ presents: real.public, run: () => ({ code: 0, stdout: 'app-host\n' }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const c = await act.sshCheck({ cluster: 'main', host: 'app' });
    assert.deepEqual([c.ok, c.outcome, c.address, c.port, c.site], [true, 'ok', '127.0.5.5', 2222, 'dc1']);
    assert.match(c.detail, /matches the pinned key; uname -n: app-host$/);
    const cfg = t.log.configs[0];
    assert.deepEqual(
      [cfg.host, cfg.port, cfg.username, cfg.privateKey, cfg.readyTimeout, cfg.hostKeyAlgorithms],
      ['127.0.5.5', 2222, 'deploy', client.private, 7000, ['ssh-ed25519']],
    );
    assert.deepEqual(t.log.lines, ['uname -n']);
    assert.equal(t.log.closed, t.log.opened);
  });

  it('refuses a changed key: mismatch in sshCheck, non-retryable HostKeyMismatch for actions, nothing run', async () => {
    const t = fakeSsh({ presents: impostor.public });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const c = await act.sshCheck({ cluster: 'main', host: 'app' });
    assert.deepEqual([c.ok, c.outcome], [false, 'host-key-mismatch']);
    assert.equal(
      c.detail,
      `host key mismatch for app (127.0.5.5:2222): presented ${fingerprint(blob(impostor.public))} pinned ${fingerprint(blob(real.public))}`,
    );
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'app', argv: ['rm', '-rf', '/data'] }), { type: 'HostKeyMismatch', nonRetryable: true });
    await assert.rejects(act.serviceStart({ cluster: 'main', site: 'dc1', service: 'web' }), { type: 'HostKeyMismatch' });
    assert.deepEqual(t.log.lines, []);
    const s = await act.serviceStatus({ cluster: 'main', site: 'dc1', service: 'web' });
    assert.deepEqual([s.running, s.detail.startsWith('host key mismatch')], [null, true]);
  });

  it('an unusable private key is a ConfigError naming the reference, not the key', async () => {
    const t = fakeSsh({ presents: real.public });
    const act = createActivities({ topology: () => topology(), secret: async () => 'not a key at all, but secret-ish text', ssh: t.ssh });
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'app', argv: ['true'] }), (e: Error & { type?: string }) => {
      assert.equal(e.type, 'ConfigError');
      assert.match(e.message, /SSH private key from \{ env: KEY \} \(ssh\.privateKey of cluster "main"\) cannot be used/);
      assert.ok(!e.message.includes('secret-ish'));
      return true;
    });
    assert.equal(t.log.configs.length, 0);
  });
});

describe('connection failures', () => {
  const failing = (err: Error) => async (): Promise<SshSessionLike> => {
    throw err;
  };
  const cases: [string, Error, string, string | undefined][] = [
    ['refused', Object.assign(new Error('connect ECONNREFUSED 127.0.5.5:2222'), { code: 'ECONNREFUSED', level: 'client-socket' }), 'unreachable', undefined],
    ['handshake timeout', Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }), 'unreachable', undefined],
    ['auth', Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' }), 'auth-failed', 'SshAuthFailed'],
    ['protocol', new Error('Bad packet length 12345'), 'error', undefined],
  ];
  for (const [name, err, outcome, type] of cases) {
    it(`${name}: sshCheck says ${outcome}; runRemote throws ${type ?? 'a retryable error'}`, async () => {
      const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: failing(err) });
      const c = await act.sshCheck({ cluster: 'main', host: 'app' });
      assert.equal(c.outcome, outcome);
      assert.ok(c.detail.includes(err.message));
      const e = await act.runRemote({ cluster: 'main', host: 'app', argv: ['true'] }).then(
        () => assert.fail('expected a rejection'),
        (x: Error & { type?: string; nonRetryable?: boolean }) => x,
      );
      if (type) assert.deepEqual([e.type, e.nonRetryable], [type, true]);
      else assert.notEqual(e.nonRetryable, true);
    });
  }
});

describe('runRemote', () => {
  it('keeps the last 64 KiB of each stream', async () => {
    const big = `${'a'.repeat(100_000)}THE-END`;
    const t = fakeSsh({ presents: real.public, run: () => ({ code: 0, stdout: big, stderr: 'e' }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const r = await act.runRemote({ cluster: 'main', host: 'app', argv: ['cat', 'big'] });
    assert.ok(r.stdout.endsWith('THE-END'));
    assert.ok(r.stdout.length < MAX_OUTPUT_CHARS + 100);
    assert.match(r.stdout, /^\[…\d+ characters cut\]/);
    assert.equal(r.stderr, 'e');
  });

  it('closes the session when the transport fails mid-command, and the error is retryable', async () => {
    const t = fakeSsh({ presents: real.public, run: () => new Error('connection lost') });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'app', argv: ['true'] }), (e: Error & { nonRetryable?: boolean }) => e.nonRetryable !== true);
    assert.deepEqual([t.log.opened, t.log.closed], [1, 1]);
  });

  it('refuses an empty or non-string argv as a ConfigError', async () => {
    const t = fakeSsh({ presents: real.public });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'app', argv: [] }), { type: 'ConfigError' });
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'app', argv: [1 as unknown as string] }), { type: 'ConfigError' });
    await assert.rejects(act.runRemote({ cluster: 'main', host: 'nope', argv: ['true'] }), {
      type: 'ConfigError',
      message: 'unknown host "nope" in cluster "main"; known: "app", "h2"',
    });
  });
});

describe('inside an activity context', () => {
  it('a running command heartbeats as output arrives', async () => {
    const { ssh } = fakeSsh({
      presents: real.public,
      run: async (_command, { opts }) => {
        for (let i = 0; i < 3; i++) {
          opts.onData?.();
          await new Promise((r) => setTimeout(r, 10));
        }
        return { code: 0, stdout: 'done' };
      },
    });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh });
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const r = (await env.run(act.runRemote, { cluster: 'main', host: 'app', argv: ['long-job'] })) as RemoteCommandResult;
    assert.equal(r.stdout, 'done');
    assert.ok(beats.length >= 3, `${beats.length} heartbeats`);
    assert.deepEqual(beats[0], { host: 'app' });
  });

  it('cancelling the activity stops the command and the activity reports the cancellation', async () => {
    let aborted = false;
    const { ssh } = fakeSsh({
      presents: real.public,
      run: (_command, { opts }) =>
        new Promise<FakeReply>((resolve) => {
          opts.signal?.addEventListener('abort', () => {
            aborted = true;
            resolve({ code: null, signal: 'KILL' });
          });
        }),
    });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh });
    const env = new MockActivityEnvironment();
    const running = env.run(act.runRemote, { cluster: 'main', host: 'app', argv: ['sleep', '3600'] });
    setTimeout(() => env.cancel(), 50);
    await assert.rejects(running, (e: Error) => e instanceof CancelledFailure);
    assert.equal(aborted, true);
  });
});
