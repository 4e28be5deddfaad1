/**
 * The PostgreSQL lifecycle activities (postgres/lifecycle.ts) and runHook with fakes: a fake SSH
 * transport that plays pg_ctl and pg_controldata against a simulated node, and a fake pg client
 * whose connections fail while that node is down. What is asserted is what an operator cares
 * about: which stop was used, whether the node ends fenced, that a primary is never promoted twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type pg from 'pg';
import { ed25519KeyPair } from '../support/ssh-keys';
import { createActivities, type ActivityDeps, type PgClientLike } from '../../src/activities';
import { parseControlData } from '../../src/activities/postgres/lifecycle';
import type { Topology } from '../../src/topology/schema';
import { fakeSsh, type FakeSshLog } from '../support/fake-ssh';
import { buildTopology } from '../support/topology';

const clientKey = ed25519KeyPair();
const hostKey = ed25519KeyPair();
const impostor = ed25519KeyPair();

function topology(): Topology {
  return buildTopology({
    sites: {
      dc1: {},
      dc2: {
        hooks: {
          afterPromote: [
            { name: 'warm-cache', host: 'h2', command: ['warm', '--all', 'it is {site}'], timeoutSeconds: 42 },
            { name: 'tell-lb', host: 'h2', command: ['true'] },
          ],
        },
      },
    },
    hosts: {
      h1: { site: 'dc1', address: '127.0.7.1', hostKey: hostKey.public },
      h2: { site: 'dc2', address: '127.0.7.2', hostKey: hostKey.public },
    },
    postgres: {
      user: 'switchyard',
      replication: { user: 'rep' },
      nodes: {
        p: {
          site: 'dc1',
          sshHost: 'h1',
          host: '10.0.0.1',
          dataDir: '/data/p',
          configDir: '/etc/pg/p',
          binDir: '/pg/bin',
          slot: 'p',
          ec2: { tags: { 'switchyard:node': 'p' } },
        },
        s: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', port: 5433, dataDir: '/data/s', binDir: '/pg/bin', slot: 's', logFile: '/var/log/pg-s.log' },
      },
    },
    ec2: { region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' },
  });
}

/** pg_controldata output as PostgreSQL 15 prints it (LC_ALL=C), abridged only by the fields' order. */
function controlText(state: string, checkpoint = '0/3000060', tli = 1): string {
  return `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710897567256517587
Database cluster state:               ${state}
pg_control last modified:             Sun Nov 22 07:41:04 2026
Latest checkpoint location:           ${checkpoint}
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's REDO WAL file:    000000010000000000000003
Latest checkpoint's TimeLineID:       ${tli}
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's oldestCommitTsXid:0
Time of latest checkpoint:            Sun Nov 22 07:41:04 2026
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Data page checksum version:           1
Mock authentication nonce:            44a8cbd35b9ddfcea4cf9ef7e2d036b2872834cf6e887d043da2d3c69e74df9a
`;
}

type Reply = { code: number | null; stdout?: string; stderr?: string };

/** A PostgreSQL node as its host's commands and its port see it. */
class SimNode {
  running: boolean;
  state: string;
  fastWorks: boolean;
  immediateWorks: boolean;
  startWorks = true;
  log = 'LOG:  starting PostgreSQL 15\nFATAL:  could not bind IPv4 address "10.0.0.1": Address already in use\n';
  constructor(o: { running: boolean; fastWorks?: boolean; immediateWorks?: boolean; state?: string }) {
    this.running = o.running;
    this.state = o.state ?? (o.running ? 'in production' : 'shut down');
    this.fastWorks = o.fastWorks ?? true;
    this.immediateWorks = o.immediateWorks ?? true;
  }
  run(command: string): Reply {
    if (/\/pg_ctl status /.test(command))
      return this.running
        ? { code: 0, stdout: 'pg_ctl: server is running (PID: 4242)\n/pg/bin/postgres "-D" "/etc/pg/p"\n' }
        : { code: 3, stdout: 'pg_ctl: no server running\n' };
    // The fast stop: pg_ctl stop -m fast -W, then a wait for postmaster.pid (STOP_FAST_SH).
    const fastScript = /^sh -c .*stop -D "\$4" -m fast -W/s.test(command);
    if (fastScript || /\/pg_ctl stop /.test(command)) {
      if (!this.running) return { code: 1, stderr: 'pg_ctl: PID file "/data/p/postmaster.pid" does not exist\nIs server running?\n' };
      const fast = fastScript || / -m fast /.test(command);
      if (fastScript) {
        if (!this.fastWorks) return { code: 1, stdout: 'server shutting down\n', stderr: 'still running after 2000 checks\n' };
        this.running = false;
        this.state = 'shut down';
        return { code: 0, stdout: 'server shutting down\nserver stopped\n' };
      }
      if (fast ? this.fastWorks : this.immediateWorks) {
        this.running = false;
        this.state = fast ? 'shut down' : 'in production';
        return { code: 0, stdout: 'waiting for server to shut down.... done\nserver stopped\n' };
      }
      return { code: 1, stdout: 'waiting for server to shut down...... failed\n', stderr: 'pg_ctl: server does not shut down\n' };
    }
    if (/\/pg_ctl start /.test(command)) {
      if (!this.startWorks)
        return { code: 1, stdout: 'waiting for server to start.... stopped waiting\n', stderr: 'pg_ctl: could not start server\nExamine the log output.\n' };
      this.running = true;
      this.state = 'in production';
      return { code: 0, stdout: 'waiting for server to start.... done\nserver started\n' };
    }
    if (/\/pg_controldata /.test(command)) return { code: 0, stdout: controlText(this.state) };
    if (/^tail /.test(command)) return { code: 0, stdout: this.log };
    return { code: 127, stderr: `sim: unknown command ${command}` };
  }
}

interface Seen extends FakeSshLog {
  pg: pg.ClientConfig[];
  queries: string[];
}

/** The whole fake world: SSH per host address, pg per host, both looking at the sim nodes. */
function world(
  nodes: Record<string, SimNode>,
  opts: {
    unreachable?: string[];
    presents?: string;
    pgAnswers?: (sql: string, values?: unknown[]) => Record<string, unknown>[] | undefined;
    deps?: Partial<ActivityDeps>;
  } = {},
) {
  const byAddress: Record<string, SimNode | undefined> = { '127.0.7.1': nodes.p, '127.0.7.2': nodes.s };
  const byPgHost: Record<string, SimNode | undefined> = { '10.0.0.1': nodes.p, '10.0.0.2': nodes.s };
  const { ssh, log } = fakeSsh({
    presents: opts.presents ?? hostKey.public,
    unreachable: opts.unreachable,
    run: (command, { host }) => byAddress[host]?.run(command) ?? { code: 0 },
  });
  const seen: Seen = Object.assign(log, { pg: [] as pg.ClientConfig[], queries: [] as string[] });
  const pgClient = (cfg: pg.ClientConfig): PgClientLike => {
    seen.pg.push(cfg);
    const node = byPgHost[String(cfg.host)];
    return {
      async connect() {
        if (!node?.running) throw Object.assign(new Error(`connect ECONNREFUSED ${cfg.host}:${cfg.port}`), { code: 'ECONNREFUSED' });
      },
      async query(sql: string, values?: unknown[]) {
        seen.queries.push(sql);
        if (!node?.running) throw Object.assign(new Error('Connection terminated unexpectedly'), {});
        const rows = opts.pgAnswers?.(sql, values);
        if (rows) return { rows };
        if (/^SELECT 1$/.test(sql)) return { rows: [{ '?column?': 1 }] };
        throw new Error(`fake pg: unexpected query ${sql.slice(0, 80)}`);
      },
      async end() {},
    };
  };
  const act = createActivities({
    topology,
    secret: async () => clientKey.private,
    ssh,
    pgClient,
    timeouts: { verifyMs: 300 },
    ...opts.deps,
  });
  return { act, seen, commands: () => seen.commands.map((c) => c.command) };
}

describe('pg_controldata', () => {
  it('parses the fields switchyard uses from PostgreSQL 15 output', () => {
    assert.deepEqual(parseControlData(controlText('shut down', '0/3684FF8', 2)), {
      state: 'shut down',
      checkpointLsn: '0/3684FF8',
      redoLsn: '0/3000028',
      timeline: 2,
      minRecoveryEndLsn: '0/0',
      systemIdentifier: '7710897567256517587',
    });
    assert.equal(parseControlData(controlText('in archive recovery')).state, 'in archive recovery');
    assert.equal(parseControlData(controlText('shut down in recovery')).state, 'shut down in recovery');
  });

  it('gives nulls for what is missing or not in the expected form', () => {
    assert.deepEqual(parseControlData(''), {
      state: null,
      checkpointLsn: null,
      redoLsn: null,
      timeline: null,
      minRecoveryEndLsn: null,
      systemIdentifier: null,
    });
    const odd = parseControlData("Database cluster state: in production\nLatest checkpoint location: nonsense\nLatest checkpoint's TimeLineID: x\n");
    assert.deepEqual([odd.state, odd.checkpointLsn, odd.timeline], ['in production', null, null]);
  });

  it("runs pg_controldata -D <dataDir> from binDir in the C locale on the node's host", async () => {
    const w = world({ p: new SimNode({ running: true }) });
    const c = await w.act.pgControlData({ cluster: 'main', node: 'p' });
    assert.deepEqual([c.ok, c.state, c.checkpointLsn, c.timeline, c.node], [true, 'in production', '0/3000060', 1, 'p']);
    assert.deepEqual(
      w.seen.commands.map((x) => [x.host, x.command]),
      [['127.0.7.1', 'env LC_ALL=C /pg/bin/pg_controldata -D /data/p']],
    );
    assert.ok(!JSON.stringify(c).includes('44a8cbd35b9d'), 'the mock authentication nonce is not passed on');
    assert.equal(w.seen.closed, w.seen.opened);
  });

  it('a failing command and an unreachable host are data (ok:false), not errors', async () => {
    const node = new SimNode({ running: false });
    node.run = () => ({ code: 1, stderr: 'pg_controldata: error: could not open file "/data/p/global/pg_control" for reading: No such file or directory\n' });
    const failing = await world({ p: node }).act.pgControlData({ cluster: 'main', node: 'p' });
    assert.equal(failing.ok, false);
    assert.equal(failing.state, null);
    assert.match(failing.detail, /exited 1: .*could not open file/);
    const away = await world({ p: new SimNode({ running: true }) }, { unreachable: ['127.0.7.1'] }).act.pgControlData({ cluster: 'main', node: 'p' });
    assert.equal(away.ok, false);
    assert.match(away.detail, /cannot connect to h1 .*ECONNREFUSED/);
  });

  it('a host key that does not match throws non-retryably; an unknown node is a ConfigError', async () => {
    const w = world({ p: new SimNode({ running: true }) }, { presents: impostor.public });
    await assert.rejects(w.act.pgControlData({ cluster: 'main', node: 'p' }), { type: 'HostKeyMismatch', nonRetryable: true });
    await assert.rejects(
      w.act.pgControlData({ cluster: 'main', node: 'x' }),
      (e: Error & { type?: string }) => e.type === 'ConfigError' && /known: "p", "s"/.test(e.message),
    );
  });
});

describe('pgFence', () => {
  it('running: stops it fast, confirms it down, refusing connections, and reads the control file', async () => {
    const node = new SimNode({ running: true });
    const w = world({ p: node });
    const f = await w.act.pgFence({ cluster: 'main', node: 'p', fastTimeoutSeconds: 7 });
    assert.deepEqual(
      [f.sshReachable, f.wasRunning, f.stoppedWith, f.stopped, f.refusesConnections, f.fenced, f.changed, f.host],
      [true, true, 'fast', true, true, true, true, 'h1'],
    );
    assert.equal(node.running, false);
    assert.deepEqual(w.commands(), [
      'env LC_ALL=C /pg/bin/pg_ctl status -D /etc/pg/p',
      `sh -c ${w.commands()[1].slice(6, w.commands()[1].indexOf(' sh env '))} sh env LC_ALL=C /pg/bin/pg_ctl /etc/pg/p /data/p/postmaster.pid 700`,
      'env LC_ALL=C /pg/bin/pg_ctl status -D /etc/pg/p',
      'env LC_ALL=C /pg/bin/pg_controldata -D /data/p',
    ]);
    // pg_ctl gets its -t before the exec's own timeout cuts it off.
    assert.ok(w.seen.commands[1].timeoutMs > 7_000);
    assert.equal(f.control?.state, 'shut down');
    assert.equal(f.control?.checkpointLsn, '0/3000060');
    assert.match(f.detail, /^p \(10\.0\.0\.1:5432\) is fenced: stopped with pg_ctl stop -m fast; nothing accepts connections at 10\.0\.0\.1:5432/);
    assert.equal(f.steps.length, 5);
    assert.match(f.steps[0], /running/);
    assert.equal(w.seen.closed, w.seen.opened);
  });

  it('fast fails: stops it immediate', async () => {
    const node = new SimNode({ running: true, fastWorks: false });
    const w = world({ p: node });
    const f = await w.act.pgFence({ cluster: 'main', node: 'p' });
    assert.deepEqual([f.stoppedWith, f.stopped, f.fenced, f.changed], ['immediate', true, true, true]);
    const stops = w.commands().filter((c) => / stop |-m fast -W/.test(c));
    assert.equal(stops.length, 2);
    assert.match(stops[0], /^sh -c .* sh env LC_ALL=C \/pg\/bin\/pg_ctl \/etc\/pg\/p \/data\/p\/postmaster\.pid 2000$/s);
    assert.equal(stops[1], 'env LC_ALL=C /pg/bin/pg_ctl stop -D /etc/pg/p -m immediate -w -t 30');
    assert.match(f.steps.join('\n'), /-m fast, waiting up to 20 s: exited 1: .*still running after 2000 checks/);
    assert.equal(f.control?.state, 'in production', 'an immediate stop leaves the control file as it was');
  });

  it('not running: no stop is sent; fenced, nothing changed (a second fence is the same)', async () => {
    const node = new SimNode({ running: false });
    const w = world({ p: node });
    const f = await w.act.pgFence({ cluster: 'main', node: 'p' });
    assert.deepEqual([f.wasRunning, f.stoppedWith, f.stopped, f.refusesConnections, f.fenced, f.changed], [false, null, true, true, true, false]);
    assert.ok(!w.commands().some((c) => / stop /.test(c)));
    assert.match(f.detail, /is fenced: was already stopped/);
  });

  it('neither stop works: not fenced, and it says why', async () => {
    const node = new SimNode({ running: true, fastWorks: false, immediateWorks: false });
    const f = await world({ p: node }).act.pgFence({ cluster: 'main', node: 'p', fastTimeoutSeconds: 1 });
    assert.deepEqual([f.stoppedWith, f.stopped, f.refusesConnections, f.fenced, f.changed], [null, false, false, false, true]);
    assert.match(
      f.detail,
      /is NOT fenced: pg_ctl status still reports it running after fast and immediate stops; PostgreSQL at 10\.0\.0\.1:5432 accepts connections/,
    );
  });

  it('SSH unreachable is data: not fenced, and the connection check says whether PostgreSQL answers', async () => {
    const up = await world({ p: new SimNode({ running: true }) }, { unreachable: ['127.0.7.1'] }).act.pgFence({ cluster: 'main', node: 'p' });
    assert.deepEqual(
      [up.sshReachable, up.wasRunning, up.stopped, up.refusesConnections, up.fenced, up.changed, up.control],
      [false, null, false, false, false, false, null],
    );
    assert.match(up.detail, /NOT fenced: its host h1 cannot be reached over SSH; PostgreSQL at 10\.0\.0\.1:5432 accepts connections/);
    const down = await world({ p: new SimNode({ running: false }) }, { unreachable: ['127.0.7.1'] }).act.pgFence({ cluster: 'main', node: 'p' });
    assert.deepEqual([down.sshReachable, down.refusesConnections, down.fenced], [false, true, false]);
    assert.match(down.steps.join('\n'), /cannot connect to h1 .*ECONNREFUSED.*\n.*nothing accepts connections at 10\.0\.0\.1:5432/);
  });

  it('a host key mismatch throws (a person must look); a nonsense timeout is a ConfigError', async () => {
    const w = world({ p: new SimNode({ running: true }) }, { presents: impostor.public });
    await assert.rejects(w.act.pgFence({ cluster: 'main', node: 'p' }), { type: 'HostKeyMismatch', nonRetryable: true });
    await assert.rejects(world({ p: new SimNode({ running: true }) }).act.pgFence({ cluster: 'main', node: 'p', fastTimeoutSeconds: 0 }), {
      type: 'ConfigError',
    });
  });

  it('a server that answers but refuses the login is not "refusing connections"', async () => {
    const node = new SimNode({ running: false });
    const w = world(
      { p: node },
      {
        deps: {
          pgClient: () => ({
            connect: async () => {
              throw Object.assign(new Error('password authentication failed for user "switchyard"'), { code: '28P01' });
            },
            query: async () => ({ rows: [] }),
            end: async () => undefined,
          }),
        },
      },
    );
    const f = await w.act.pgFence({ cluster: 'main', node: 'p' });
    assert.deepEqual([f.stopped, f.refusesConnections, f.fenced], [true, false, false]);
    assert.match(f.detail, /answers but refused the login/);
  });
});

describe('pgStart', () => {
  it('starts a stopped node with pg_ctl start -l <configDir>/switchyard-pg.log and waits for connections', async () => {
    const node = new SimNode({ running: false });
    const w = world({ p: node });
    const r = await w.act.pgStart({ cluster: 'main', node: 'p' });
    assert.deepEqual(r, {
      node: 'p',
      changed: true,
      running: true,
      detail: 'started (pg_ctl start -l /etc/pg/p/switchyard-pg.log); PostgreSQL at 10.0.0.1:5432 accepts connections',
    });
    assert.deepEqual(w.commands(), [
      'env LC_ALL=C /pg/bin/pg_ctl status -D /etc/pg/p',
      '/pg/bin/pg_ctl start -D /etc/pg/p -l /etc/pg/p/switchyard-pg.log -w -t 60',
    ]);
  });

  it("uses the node's logFile and its dataDir when no configDir is set", async () => {
    const w = world({ s: new SimNode({ running: false }) });
    await w.act.pgStart({ cluster: 'main', node: 's' });
    assert.equal(w.commands()[1], '/pg/bin/pg_ctl start -D /data/s -l /var/log/pg-s.log -w -t 60');
  });

  it('a running node is left alone (changed:false)', async () => {
    const w = world({ p: new SimNode({ running: true }) });
    const r = await w.act.pgStart({ cluster: 'main', node: 'p' });
    assert.deepEqual([r.changed, r.running], [false, true]);
    assert.ok(!w.commands().some((c) => / start /.test(c)));
  });

  it('throws a retryable error carrying the last lines of the log when it does not come up', async () => {
    const node = new SimNode({ running: false });
    node.startWorks = false;
    const w = world({ p: node });
    await assert.rejects(w.act.pgStart({ cluster: 'main', node: 'p' }), (e: Error & { nonRetryable?: boolean }) => {
      assert.notEqual(e.nonRetryable, true);
      assert.match(e.message, /PostgreSQL on p \(10\.0\.0\.1:5432\) did not start: pg_ctl start exited 1/);
      assert.match(e.message, /last lines of \/etc\/pg\/p\/switchyard-pg\.log on h1 ---\n.*could not bind IPv4 address/s);
      return true;
    });
    assert.equal(w.commands().at(-1), 'tail -n 20 /etc/pg/p/switchyard-pg.log');
  });

  it('an unreachable host is a retryable error (an action, not a read)', async () => {
    const e = await world({ p: new SimNode({ running: false }) }, { unreachable: ['127.0.7.1'] })
      .act.pgStart({ cluster: 'main', node: 'p' })
      .then(
        () => null,
        (err: Error & { nonRetryable?: boolean }) => err,
      );
    assert.ok(e);
    assert.notEqual(e.nonRetryable, true);
    assert.match(e.message, /ECONNREFUSED/);
  });
});

describe('pgPromote', () => {
  const position = { checkpoint_tli: 1, wal_tli: 2, lsn: '0/5000120' };

  it('already primary: reports the timeline and never calls pg_promote', async () => {
    const w = world(
      { s: new SimNode({ running: true }) },
      {
        pgAnswers: (sql) => (/pg_is_in_recovery/.test(sql) ? [{ rec: false }] : /pg_control_checkpoint/.test(sql) ? [position] : undefined),
      },
    );
    const r = await w.act.pgPromote({ cluster: 'main', node: 's' });
    assert.deepEqual(r, {
      node: 's',
      changed: false,
      timeline: 2,
      lsn: '0/5000120',
      detail: 'already primary on timeline 2 (at 0/5000120): not promoted again',
    });
    assert.ok(!w.seen.queries.some((q) => /pg_promote/.test(q)));
  });

  it('a standby: pg_promote(false) signals, then it is polled until out of recovery', async () => {
    let polls = 0;
    let promoted = false;
    let promoteSql = '';
    const w = world(
      { s: new SimNode({ running: true }) },
      {
        pgAnswers: (sql) => {
          if (/pg_promote/.test(sql)) {
            promoteSql = sql;
            promoted = true;
            return [{ promoted: true }];
          }
          // Out of recovery on the third check after the signal.
          if (/pg_is_in_recovery/.test(sql)) return [{ rec: !promoted || ++polls < 3 }];
          if (/pg_control_checkpoint/.test(sql)) return [position];
          return undefined;
        },
      },
    );
    const r = await w.act.pgPromote({ cluster: 'main', node: 's', waitSeconds: 90 });
    assert.deepEqual([r.changed, r.timeline, r.lsn], [true, 2, '0/5000120']);
    assert.match(promoteSql, /pg_promote\(false\)/, 'no server-side wait (it checks only every 100 ms)');
    assert.equal(polls, 3);
    assert.match(r.detail, /pg_promote signalled; out of recovery after \d+ ms/);
  });

  it('still in recovery after the wait: a retryable error', async () => {
    const w = world(
      { s: new SimNode({ running: true }) },
      {
        pgAnswers: (sql) => (/pg_promote/.test(sql) ? [{ promoted: false }] : /pg_is_in_recovery/.test(sql) ? [{ rec: true }] : undefined),
      },
    );
    await assert.rejects(w.act.pgPromote({ cluster: 'main', node: 's', waitSeconds: 1 }), (e: Error & { nonRetryable?: boolean }) => {
      assert.notEqual(e.nonRetryable, true);
      assert.match(e.message, /s \(10\.0\.0\.2:5433\) is still in recovery .*pg_promote returned false/);
      return true;
    });
  });

  it('"recovery is not in progress" from pg_promote (promoted meanwhile) is success', async () => {
    let rec = true;
    const w = world(
      { s: new SimNode({ running: true }) },
      {
        pgAnswers: (sql) => {
          if (/pg_promote/.test(sql)) {
            rec = false;
            throw Object.assign(new Error('recovery is not in progress'), { code: '55000' });
          }
          if (/pg_is_in_recovery/.test(sql)) return [{ rec }];
          if (/pg_control_checkpoint/.test(sql)) return [position];
          return undefined;
        },
      },
    );
    const r = await w.act.pgPromote({ cluster: 'main', node: 's' });
    assert.deepEqual([r.timeline, r.lsn], [2, '0/5000120']);
  });

  it('an unreachable node is retryable; a user without the right to promote is a ConfigError', async () => {
    const down = await world({ s: new SimNode({ running: false }) })
      .act.pgPromote({ cluster: 'main', node: 's' })
      .then(
        () => null,
        (e: Error & { nonRetryable?: boolean }) => e,
      );
    assert.ok(down && down.nonRetryable !== true && /promoting s .* failed: connect ECONNREFUSED/.test(down.message));
    const w = world(
      { s: new SimNode({ running: true }) },
      {
        pgAnswers: (sql) => {
          if (/pg_promote/.test(sql)) throw Object.assign(new Error('permission denied for function pg_promote'), { code: '42501' });
          return /pg_is_in_recovery/.test(sql) ? [{ rec: true }] : undefined;
        },
      },
    );
    await assert.rejects(w.act.pgPromote({ cluster: 'main', node: 's' }), { type: 'ConfigError', nonRetryable: true });
  });
});

describe('runHook', () => {
  it('an unknown hook name is a ConfigError listing the known ones', async () => {
    const w = world({});
    await assert.rejects(w.act.runHook({ cluster: 'main', site: 'dc2', hook: 'warm' }), (e: Error & { type?: string; nonRetryable?: boolean }) => {
      assert.equal(e.type, 'ConfigError');
      assert.equal(e.nonRetryable, true);
      assert.equal(e.message, 'unknown hook "warm" in sites.dc2.hooks.afterPromote of cluster "main"; known: "warm-cache", "tell-lb"');
      return true;
    });
    await assert.rejects(w.act.runHook({ cluster: 'main', site: 'dc1', hook: 'warm-cache' }), /known: none/);
    assert.equal(w.seen.opened, 0);
  });

  it("runs the hook's argv (quoted) on its host with its timeout and returns a non-zero exit", async () => {
    const { ssh, log } = fakeSsh({ presents: hostKey.public, run: () => ({ code: 2, stdout: 'partly warm\n', stderr: 'cache node 3 down\n' }) });
    const act = createActivities({ topology, secret: async () => clientKey.private, ssh });
    const r = await act.runHook({ cluster: 'main', site: 'dc2', hook: 'warm-cache' });
    assert.deepEqual(log.commands, [{ host: '127.0.7.2', command: "warm --all 'it is {site}'", timeoutMs: 42_000 }]);
    assert.deepEqual([r.hook, r.site, r.host, r.exitCode, r.stdout, r.stderr], ['warm-cache', 'dc2', 'h2', 2, 'partly warm\n', 'cache node 3 down\n']);
  });
});
