/**
 * runHook over a fake SSH transport: a hook's check command decides whether its command runs, on
 * the same connection, and a check that ends without an exit status runs nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ed25519KeyPair } from '../support/ssh-keys';
import { createActivities } from '../../src/activities';
import type { Topology } from '../../src/topology/schema';
import { fakeSsh } from '../support/fake-ssh';
import { buildTopology } from '../support/topology';

const client = ed25519KeyPair();
const real = ed25519KeyPair();

function topology(): Topology {
  return buildTopology({
    sites: {
      dc1: {
        hooks: {
          afterPromote: [
            { name: 'repoint', host: 'app', command: ['repoint', '--to', 'db b'], check: ['repointed', '--to', 'db b'], timeoutSeconds: 600 },
            { name: 'page', host: 'app', command: ['page-team'] },
          ],
        },
      },
      dc2: {},
    },
    hosts: {
      app: { site: 'dc1', address: '127.0.5.5', hostKey: real.public },
      h2: { site: 'dc2', address: '127.0.5.6', hostKey: real.public },
    },
    postgres: {
      nodes: {
        a: { site: 'dc1', sshHost: 'app', host: '10.0.0.1', dataDir: '/d', binDir: '/b', slot: 'a' },
        b: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', dataDir: '/d', binDir: '/b', slot: 'b' },
      },
    },
  });
}

describe('runHook', () => {
  const run = (check: { code: number | null; stdout?: string; stderr?: string }) => (command: string) =>
    command.startsWith('repointed ') ? check : command.startsWith('repoint ') ? { code: 0, stdout: 'repointed to db b' } : { code: 0, stdout: 'paged' };

  it('a check that exits 0 means already done: the command is not run, and the result says so', async () => {
    const t = fakeSsh({ presents: real.public, run: run({ code: 0, stdout: 'points at db b' }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const r = await act.runHook({ cluster: 'main', site: 'dc1', hook: 'repoint' });
    assert.deepEqual(t.log.lines, ["repointed --to 'db b'"]);
    assert.deepEqual([r.hook, r.site, r.alreadyDone, r.exitCode, r.command, r.stdout], ['repoint', 'dc1', true, 0, "repointed --to 'db b'", 'points at db b']);
    assert.deepEqual([t.log.opened, t.log.closed], [1, 1]);
  });

  it('a check that exits non-zero: the command runs next, on the same connection', async () => {
    const t = fakeSsh({ presents: real.public, run: run({ code: 1 }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const r = await act.runHook({ cluster: 'main', site: 'dc1', hook: 'repoint' });
    assert.deepEqual(t.log.lines, ["repointed --to 'db b'", "repoint --to 'db b'"]);
    assert.deepEqual([r.alreadyDone, r.exitCode, r.stdout], [false, 0, 'repointed to db b']);
    assert.deepEqual([t.log.opened, t.log.closed], [1, 1]);
  });

  it('a check that ends without an exit status (killed, timed out): an error, and the command is not run blind', async () => {
    const t = fakeSsh({ presents: real.public, run: run({ code: null, stderr: 'Terminated' }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    await assert.rejects(act.runHook({ cluster: 'main', site: 'dc1', hook: 'repoint' }), (e: Error & { nonRetryable?: boolean }) => {
      assert.match(
        e.message,
        /^check command of hook "repoint" \(sites\.dc1\.hooks\.afterPromote\) on app ended by signal \?: Terminated: cannot tell whether the hook already ran, so it was not run$/,
      );
      assert.notEqual(e.nonRetryable, true);
      return true;
    });
    assert.deepEqual(t.log.lines, ["repointed --to 'db b'"]);
  });

  it('a hook without a check runs its command only', async () => {
    const t = fakeSsh({ presents: real.public, run: run({ code: 0 }) });
    const act = createActivities({ topology: () => topology(), secret: async () => client.private, ssh: t.ssh });
    const r = await act.runHook({ cluster: 'main', site: 'dc1', hook: 'page' });
    assert.deepEqual(t.log.lines, ['page-team']);
    assert.deepEqual([r.alreadyDone, r.exitCode, r.stdout], [false, 0, 'paged']);
  });
});
