/**
 * Secrets never leave an activity (secrets.ts, ssh/exec.ts): the output of a hook and of the
 * command traffic driver is scrubbed of the call's secrets before it is cut or summarised (a cut
 * secret, its lines joined, or its JSON form would no longer be recognised by the scrub of the
 * result), and SecretScope.redactError scrubs a failure's details, its cause chain and its stack,
 * keeping its class, type, nonRetryable and nextRetryDelay.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, DefaultFailureConverter, defaultPayloadConverter } from '@temporalio/common';
import { createActivities, MAX_OUTPUT_CHARS } from '../../src/activities';
import { Runtime } from '../../src/activities/runtime';
import { SecretScope } from '../../src/activities/secrets';
import { Errors } from '../../src/contract/errors';
import type { SecretRef, Topology } from '../../src/topology/schema';
import { fakeSsh, type FakeRun } from '../support/fake-ssh';
import { ed25519KeyPair } from '../support/ssh-keys';
import { buildTopology } from '../support/topology';

const client = ed25519KeyPair();
const hostKeys = ed25519KeyPair();
/** The SSH key's passphrase: a quote and a backslash, which JSON.stringify escapes. */
const PASSPHRASE = 'hunter2"\\Zq-sekrit';
/** The last line of the private key's body: private key bytes. */
const KEY_TAIL = client.private.trim().split('\n').slice(-2)[0];

const secret = async (ref: SecretRef): Promise<string> => (ref.env === 'PASS' ? PASSPHRASE : client.private);

function topology(): Topology {
  return buildTopology({
    ssh: { passphrase: { env: 'PASS' } },
    sites: {
      dc1: {
        hooks: {
          afterPromote: [
            { name: 'echo', host: 'app', command: ['echo-it'] },
            { name: 'checked', host: 'app', command: ['do-it'], check: ['done-yet'] },
          ],
        },
      },
      dc2: {},
    },
    hosts: {
      app: { site: 'dc1', address: '127.0.5.5', hostKey: hostKeys.public },
      h2: { site: 'dc2', address: '127.0.5.6', hostKey: hostKeys.public },
    },
    postgres: {
      nodes: {
        a: { site: 'dc1', sshHost: 'app', host: '10.0.0.1', dataDir: '/d', binDir: '/b', slot: 'a' },
        b: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', dataDir: '/d', binDir: '/b', slot: 'b' },
      },
    },
    traffic: [{ kind: 'command', name: 'dns', host: 'app', move: ['set-dns', '{site}'], read: ['get-dns'] }],
  });
}

const activities = (run: FakeRun) => createActivities({ topology, secret, ssh: fakeSsh({ presents: hostKeys.public, run }).ssh });

const noSecret = (text: string) => {
  assert.ok(!text.includes('sekrit'), `the passphrase (or part of it) is gone: ${text}`);
  assert.ok(!text.includes(KEY_TAIL), `the private key is gone: ${text}`);
};

describe('hook output', () => {
  it('a hook that echoes the passphrase and prints the private key: both come back as ***', async () => {
    const act = activities(() => ({ code: 0, stdout: `using ${PASSPHRASE}\n`, stderr: `${client.private}\n` }));
    const r = await act.runHook({ cluster: 'main', site: 'dc1', hook: 'echo' });
    assert.equal(r.stdout, 'using ***\n');
    assert.equal(r.stderr, '***\n');
  });

  it('output longer than a result keeps: the secret is scrubbed before the cut, so no end of it survives', async () => {
    const act = activities(() => ({ code: 0, stdout: `${PASSPHRASE}${'y'.repeat(MAX_OUTPUT_CHARS - 5)}` }));
    const r = await act.runHook({ cluster: 'main', site: 'dc1', hook: 'echo' });
    noSecret(r.stdout);
    assert.ok(r.stdout.startsWith('***y'), r.stdout.slice(0, 40));
  });

  it("a check that ends without an exit status: the error's last lines of output do not carry the private key", async () => {
    const act = activities((command) => (command === 'done-yet' ? { code: null, stderr: `${client.private}\n` } : { code: 0 }));
    await assert.rejects(act.runHook({ cluster: 'main', site: 'dc1', hook: 'checked' }), (e: Error) => {
      assert.match(e.message, /^check command of hook "checked" .* ended by signal \?: \*\*\*: cannot tell/);
      noSecret(e.message);
      noSecret(e.stack ?? '');
      return true;
    });
  });
});

describe('command driver output', () => {
  it('a read command that prints the passphrase: the detail quotes *** (not the JSON-escaped secret)', async () => {
    const act = activities(() => ({ code: 0, stdout: `${PASSPHRASE}\n` }));
    const r = await act.trafficRead({ cluster: 'main', driver: 'dns' });
    assert.equal(r.site, null);
    assert.equal(r.detail, 'read command printed "***", which is no site');
  });

  it('a failing read command: its output in the detail is scrubbed', async () => {
    const act = activities(() => ({ code: 3, stderr: `no such zone (key ${client.private})` }));
    const r = await act.trafficRead({ cluster: 'main', driver: 'dns' });
    assert.equal(r.detail, 'read command exited 3: no such zone (key ***)');
  });

  it("a failing move whose output is longer than the error keeps: the cut leaves none of the secret's end", async () => {
    const act = activities((command) => (command === 'get-dns' ? { code: 0, stdout: 'dc1\n' } : { code: 1, stderr: `${PASSPHRASE}${'x'.repeat(490)}` }));
    await assert.rejects(act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc2' }), (e: Error) => {
      assert.match(e.message, /^move command of traffic driver "dns" exited 1: \*\*\*x+$/);
      noSecret(e.message);
      return true;
    });
  });
});

describe('SecretScope.redactError', () => {
  const SECRET = 'tok-3f9a1c77';
  const scope = async () => {
    const s = new SecretScope(async () => SECRET);
    assert.equal(await s.get({ env: 'TOKEN' }, 'a token'), SECRET);
    return s;
  };
  const nested = () => {
    const root = Object.assign(new Error(`root cause: login with ${SECRET} refused`), { code: 'EAUTH' });
    const inner = ApplicationFailure.create({
      message: `inner: ${SECRET}`,
      type: Errors.WrongRole,
      nonRetryable: true,
      details: [{ why: `said ${SECRET}` }],
      cause: root,
    });
    return ApplicationFailure.create({
      message: `outer: url https://hooks.example/${SECRET}`,
      type: Errors.ConfigError,
      nonRetryable: true,
      nextRetryDelay: '7s',
      details: [{ url: `https://hooks.example/${SECRET}`, list: [SECRET, 'plain', 3], ok: true }, 42, null],
      cause: inner,
    });
  };

  it('an ApplicationFailure: message, details (deep), stack and the whole cause chain scrubbed; class, type, nonRetryable, nextRetryDelay kept', async () => {
    const s = await scope();
    const original = nested();
    const out = s.redactError(original) as ApplicationFailure;
    assert.ok(out instanceof ApplicationFailure);
    assert.deepEqual([out.type, out.nonRetryable, out.nextRetryDelay], [Errors.ConfigError, true, '7s']);
    assert.equal(out.message, 'outer: url https://hooks.example/***');
    assert.deepEqual(out.details, [{ url: 'https://hooks.example/***', list: ['***', 'plain', 3], ok: true }, 42, null]);
    assert.match(out.stack ?? '', /^ApplicationFailure: outer: url https:\/\/hooks\.example\/\*\*\*\n\s+at /, 'the stack keeps its frames');

    const inner = out.cause as ApplicationFailure;
    assert.ok(inner instanceof ApplicationFailure);
    assert.deepEqual([inner.type, inner.nonRetryable, inner.message, inner.details], [Errors.WrongRole, true, 'inner: ***', [{ why: 'said ***' }]]);
    const root = inner.cause as Error & { code?: string };
    assert.ok(root instanceof Error);
    assert.deepEqual([root.message, root.code], ['root cause: login with *** refused', 'EAUTH']);
    assert.match(root.stack ?? '', /^Error: root cause: login with \*\*\* refused\n\s+at /);

    // What the worker sends: the failure as the SDK converts it, with nothing of the secret in it.
    const failure = new DefaultFailureConverter().errorToFailure(out, defaultPayloadConverter);
    assert.ok(!JSON.stringify(failure).includes(SECRET));
    assert.ok(!Buffer.from(JSON.stringify(failure)).toString('base64').includes(Buffer.from(SECRET).toString('base64')));
    assert.deepEqual([failure.applicationFailureInfo?.type, failure.applicationFailureInfo?.nonRetryable], [Errors.ConfigError, true]);
    assert.deepEqual([failure.cause?.applicationFailureInfo?.type, failure.cause?.applicationFailureInfo?.nonRetryable], [Errors.WrongRole, true]);
    assert.equal(failure.cause?.cause?.message, 'root cause: login with *** refused');
    const back = new DefaultFailureConverter().failureToError(failure, defaultPayloadConverter) as ApplicationFailure;
    assert.deepEqual(back.details, out.details);

    // The original is left as it was.
    assert.ok(original.message.includes(SECRET));
    assert.ok((original.cause as Error).message.includes(SECRET));
  });

  it('a secret only in the details or only in a cause is found too', async () => {
    const s = await scope();
    const inDetails = s.redactError(
      ApplicationFailure.create({ message: 'fine', type: Errors.LockNotHeld, details: [{ holder: SECRET }] }),
    ) as ApplicationFailure;
    assert.deepEqual([inDetails.type, inDetails.nonRetryable, inDetails.details], [Errors.LockNotHeld, false, [{ holder: '***' }]]);

    class ProbeError extends Error {
      readonly target = 'dc1';
    }
    const plain = new ProbeError('probe failed', { cause: new Error(`because ${SECRET}`) });
    plain.name = 'ProbeError';
    const out = s.redactError(plain) as ProbeError;
    assert.ok(out instanceof ProbeError);
    assert.deepEqual([out.name, out.message, out.target, (out.cause as Error).message], ['ProbeError', 'probe failed', 'dc1', 'because ***']);
  });

  it('an error that mentions no secret is returned as it is; a cycle of causes ends; a thrown string is scrubbed', async () => {
    const s = await scope();
    const clean = ApplicationFailure.create({ message: 'nothing here', type: Errors.ConfigError, details: [{ a: 1 }], cause: new Error('still nothing') });
    assert.equal(s.redactError(clean), clean);

    const loop = new Error(`loop ${SECRET}`) as Error & { cause?: unknown };
    loop.cause = loop;
    const out = s.redactError(loop) as Error & { cause?: unknown };
    assert.equal(out.message, 'loop ***');
    assert.equal(out.cause, out);

    assert.equal(s.redactError(`thrown ${SECRET}`), 'thrown ***');
  });

  it('through Runtime.activity: a failure thrown by an activity leaves it scrubbed, details and cause included', async () => {
    const rt = new Runtime({ topology: () => buildTopology(), secret: async () => SECRET });
    const act = rt.activity(async (_input: Record<string, never>, call) => {
      const token = await call.secrets.get({ env: 'TOKEN' }, 'a token');
      throw ApplicationFailure.create({
        message: 'the webhook refused',
        type: Errors.ConfigError,
        nonRetryable: true,
        details: [{ sent: token }],
        cause: ApplicationFailure.create({ message: `HTTP 401 for ${token}`, type: Errors.LockUnreadable, details: [token] }),
      });
    });
    await assert.rejects(act({}), (e: ApplicationFailure) => {
      assert.ok(e instanceof ApplicationFailure);
      assert.deepEqual([e.type, e.nonRetryable, e.details], [Errors.ConfigError, true, [{ sent: '***' }]]);
      const cause = e.cause as ApplicationFailure;
      assert.deepEqual([cause.type, cause.nonRetryable, cause.message, cause.details], [Errors.LockUnreadable, false, 'HTTP 401 for ***', ['***']]);
      return true;
    });
  });
});
