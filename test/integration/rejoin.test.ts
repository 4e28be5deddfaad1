/**
 * The rejoin runbook end to end on the sandbox, and crashes of the worker in the middle of a
 * switchover and of a rejoin. Each scenario gets a fresh sandbox and checks what an operator would
 * afterwards, read directly rather than through switchyard: which node is in recovery and where its
 * WAL receiver streams from, which rows each node has, the replication slot on the primary, the
 * configuration files, the data directories kept on disk, the timeline; plus the run's result and
 * step log.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPart, stopPart } from '../../sandbox';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import type { RejoinResult } from '../../src/workflows/rejoin';
import type { SwitchoverResult } from '../../src/workflows/switchover';
import { startStage, type Stage } from '../support/stage';
import { failureOf, sleep, stepsNamed, timelineOf, waitReplayed } from '../support/runs';
import { startWorkerProcess, stopWorkerProcesses, type WorkerProcess } from '../support/worker';

async function run<T>(st: Stage, type: string, input: object, id: string): Promise<T> {
  const h = await st.start(type, input, `${id}-${Date.now()}`);
  return (await h.result()) as T;
}

/** A failover with dc1 reachable: dc1 is fenced (stopped cleanly), dc2 promoted. */
async function failover(st: Stage): Promise<FailoverResult> {
  const r = await run<FailoverResult>(st, 'failover', { cluster: 'demo', requestedBy: 'alice' }, 'failover');
  assert.equal(r.outcome, 'completed', r.state);
  assert.equal(r.fenced, true, r.state);
  assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1 is fenced');
  return r;
}

/** What an operator looks at on a standby: in recovery, and where its WAL receiver streams from. */
async function standbyOf(st: Stage, node: string): Promise<{ inRecovery: boolean; status: string | null; from: string | null }> {
  const [r] = await st.nodeQuery(
    node,
    `SELECT pg_is_in_recovery() AS rec, r.status, r.sender_host || ':' || r.sender_port AS from
       FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true`,
  );
  return { inRecovery: r.rec === true, status: (r.status as string | null) ?? null, from: (r.from as string | null) ?? null };
}

const addressOf = (st: Stage, node: string) => `${st.cluster.postgres.nodes[node].host}:${st.cluster.postgres.nodes[node].port}`;

const notes = async (st: Stage, node: string, like: string) =>
  (await st.nodeQuery(node, `SELECT note FROM public.sandbox_rows WHERE note LIKE $1 ORDER BY id`, [like])).map((r) => String(r.note));

/** The slot dc1 streams through, as dc2 reports it. */
async function slotOn(st: Stage, primary: string, slot: string): Promise<{ active: boolean } | null> {
  const rows = await st.nodeQuery(primary, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
  return rows.length ? { active: rows[0].active === true } : null;
}

/** Siblings <dataDir>.switchyard-* of a data directory (what base backups moved aside). */
function asideOf(dataDir: string): string[] {
  const dir = join(dataDir, '..');
  const base = dataDir.split('/').pop()!;
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${base}.switchyard-`))
    .map((f) => join(dir, f))
    .sort();
}

/** Processes running pg_basebackup into this data directory (read from /proc). */
function basebackupsInto(dataDir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('pg_basebackup')) && argv.includes(dataDir)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function duSync(path: string): number {
  let total = 0;
  const walk = (p: string) => {
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return;
    if (s.isDirectory()) for (const f of readdirSync(p)) walk(join(p, f));
    else total += s.size;
  };
  walk(path);
  return total;
}

function log(line: string): void {
  if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------

describe('rejoin: dc1 diverged after a failover, rejoined with pg_rewind', () => {
  let st: Stage;
  before(async () => {
    st = await startStage();
  });
  after(async () => {
    await st?.down();
  });

  it("the diverged rows are gone from dc1, dc2's rows are there, dc1 streams from dc2 through its slot, and its config file is dc2's", async () => {
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('before the failover')`);
    const f = await failover(st);
    assert.deepEqual(f.to, { site: 'dc2', node: 'dc2-db' });

    // The fence lasts: dc1 started again (a reboot) comes up read-only, in recovery, marked.
    const dataDir = st.cluster.postgres.nodes['dc1-db'].dataDir;
    await startPart(st.sb.opts, 'dc1-db/postgres');
    assert.deepEqual(await standbyOf(st, 'dc1-db'), { inRecovery: true, status: null, from: null }, 'the fenced dc1 comes back read-only');
    assert.ok(existsSync(join(dataDir, 'switchyard-fence.json')));
    await stopPart(st.sb.opts, 'dc1-db/postgres');
    // A person overrides all of it (the guard ended, standby.signal and the marker removed) and
    // starts dc1 as the primary it still thinks it is: it diverges, which the rewind must undo.
    await st.client.workflow.getHandle('switchyard-guard-demo').terminate('test: a person overrides the fence');
    for (const f of ['standby.signal', 'switchyard-fence.json']) rmSync(join(dataDir, f));
    await startPart(st.sb.opts, 'dc1-db/postgres');
    const dc1 = await standbyOf(st, 'dc1-db');
    assert.equal(dc1.inRecovery, false, 'dc1 came up as a primary');
    assert.equal(dc1.status, null, 'dc1 runs no WAL receiver');
    assert.equal((await st.nodeQuery('dc2-db', 'SELECT count(*)::int AS n FROM pg_stat_replication'))[0].n, 0, 'nothing streams from dc2');
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'diverged on dc1 ' || g FROM generate_series(1, 200) g`);
    assert.equal((await notes(st, 'dc1-db', 'diverged on dc1 %')).length, 200);
    await stopPart(st.sb.opts, 'dc1-db/postgres');
    assert.equal(await st.nodeAnswers('dc1-db'), false);

    const [w] = await st.frontQuery(
      `INSERT INTO public.sandbox_rows (note) SELECT 'written on dc2 before the rejoin ' || g FROM generate_series(1, 20) g RETURNING host(inet_server_addr()) AS s`,
    );
    assert.equal(w.s, st.cluster.postgres.nodes['dc2-db'].host, 'the front sends writes to dc2');
    const dc1Conf = st.cluster.postgres.nodes['dc1-db'].configFiles;
    assert.equal(dc1Conf.length, 1);
    const conf = typeof dc1Conf[0] === 'string' ? { from: dc1Conf[0], to: dc1Conf[0] } : dc1Conf[0];
    assert.notEqual(readFileSync(conf.to, 'utf8'), readFileSync(conf.from, 'utf8'), "dc1's app.conf differs from dc2's before the rejoin");

    const h = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }, `rejoin-rewind-${Date.now()}`);
    const r = (await h.result()) as RejoinResult;
    log(`rejoin (rewind): ${r.durationSeconds} s, copy ${r.copySeconds} s, ${r.divergedBytes} bytes diverged`);
    assert.equal(r.outcome, 'completed');
    assert.equal(r.method, 'rewind');
    assert.equal(r.fellBackBecause, null);
    assert.ok(r.divergedBytes !== null && r.divergedBytes > 0, `divergedBytes ${r.divergedBytes}`);
    assert.match(r.divergedAtLsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.deepEqual(r.movedAside, []);
    assert.deepEqual(r.primary, { node: 'dc2-db', site: 'dc2' });
    assert.deepEqual(asideOf(st.cluster.postgres.nodes['dc1-db'].dataDir), [], 'a rewind moves no directory aside');

    // Read directly: dc1 is a standby streaming from dc2's address.
    const after1 = await standbyOf(st, 'dc1-db');
    assert.deepEqual(after1, { inRecovery: true, status: 'streaming', from: addressOf(st, 'dc2-db') });
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('written on dc2 after the rejoin')`);
    await waitReplayed(st, 'dc1-db', 'dc2-db');
    assert.deepEqual(await notes(st, 'dc1-db', 'diverged on dc1 %'), [], 'what dc1 wrote on its own was rewound away');
    assert.equal((await notes(st, 'dc1-db', 'written on dc2 before the rejoin %')).length, 20);
    assert.deepEqual(await notes(st, 'dc1-db', 'written on dc2 after the rejoin'), ['written on dc2 after the rejoin']);
    assert.deepEqual(await notes(st, 'dc1-db', 'before the failover'), ['before the failover']);
    assert.equal(readFileSync(conf.to, 'utf8'), readFileSync(conf.from, 'utf8'), "dc1's app.conf is now dc2's");
    assert.match(readFileSync(conf.to, 'utf8'), /host = dc2-db/);
    assert.deepEqual(await slotOn(st, 'dc2-db', st.cluster.postgres.nodes['dc1-db'].slot), { active: true }, 'dc1 streams through its slot on dc2');
    assert.equal((await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'dc2 is still the primary');

    const p = await h.query<Progress>('progress');
    const names = p.steps.filter((s) => s.state === 'done').map((s) => s.name);
    const order = ['lock', 'stop', 'slot', 'rewind', 'config-files', 'configure', 'start', 'catch-up', 'clear-fence', 'guard-release', 'unlock'];
    const at = order.map((n) => names.indexOf(n));
    assert.ok(
      at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])),
      `steps in order ${order.join(' → ')}; got ${names.join(', ')}`,
    );
    assert.equal(stepsNamed(p, /^basebackup$/).length, 0);
    assert.match(stepsNamed(p, /^rewind$/)[0].detail, /rewound .*diverged at/);
  });

  it('a second rejoin of dc1 finds it streaming already and changes nothing', async () => {
    const r = await run<RejoinResult>(st, 'rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }, 'rejoin-again');
    assert.equal(r.outcome, 'already');
    assert.equal(r.method, null);
    assert.equal(stepsNamed(r, /^(stop|rewind|basebackup|start)$/).length, 0, 'nothing was stopped, copied or started');
    assert.deepEqual(await standbyOf(st, 'dc1-db'), { inRecovery: true, status: 'streaming', from: addressOf(st, 'dc2-db') });
  });
});

describe("rejoin: pg_rewind impossible (dc1's WAL removed), a base backup instead", () => {
  let st: Stage;
  let dataDir: string;
  let ino: number;
  before(async () => {
    st = await startStage();
    await failover(st);
    dataDir = st.cluster.postgres.nodes['dc1-db'].dataDir;
    ino = statSync(dataDir).ino;
    // pg_rewind reads the target's last checkpoint record from its pg_wal: without it, it fails.
    const wal = join(dataDir, 'pg_wal');
    const segments = readdirSync(wal).filter((f) => /^[0-9A-F]{24}$/.test(f));
    assert.ok(segments.length > 0);
    for (const s of segments) rmSync(join(wal, s));
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) SELECT 'written on dc2 before the rejoin ' || g FROM generate_series(1, 30) g`);
  });
  after(async () => {
    await st?.down();
  });

  it('method "rewind" alone fails with RewindFailed and leaves the data directory where it is', async () => {
    const h = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice', method: 'rewind' }, `rejoin-rewind-only-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'RewindFailed');
    assert.match(f.message, /pg_rewind of dc1-db from dc2-db failed: .*Rejoin with method "basebackup"/s);
    assert.equal(statSync(dataDir).ino, ino, 'the data directory was not replaced');
    assert.deepEqual(asideOf(dataDir), []);
    assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1 stays stopped');
    const p = await h.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^basebackup$/).length, 0);
    assert.equal(stepsNamed(p, /^unlock$/)[0]?.state, 'done', 'the cluster lock was released');
  });

  it('method "auto" falls back to a base backup: the old directory is kept, dc1 streams from dc2 with its rows', async () => {
    const r = await run<RejoinResult>(st, 'rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }, 'rejoin-auto');
    log(`rejoin (fallback): ${r.durationSeconds} s, copy ${r.copySeconds} s`);
    assert.equal(r.outcome, 'completed');
    assert.equal(r.method, 'basebackup');
    assert.match(r.fellBackBecause ?? '', /^pg_rewind failed: pg_rewind of dc1-db .* failed/);
    assert.equal(r.divergedBytes, null);
    assert.equal(r.movedAside.length, 1, JSON.stringify(r.movedAside));
    const [old] = r.movedAside;
    assert.match(old, /\.switchyard-\d{8}T\d{6}Z$/);
    assert.ok(existsSync(join(old, 'PG_VERSION')), `${old} is still on disk with its PG_VERSION`);
    assert.equal(statSync(old).ino, ino, "it is dc1's old data directory, moved, not copied");
    assert.deepEqual(asideOf(dataDir), [old]);
    assert.notEqual(statSync(dataDir).ino, ino, 'dc1 runs on a new data directory');

    assert.deepEqual(await standbyOf(st, 'dc1-db'), { inRecovery: true, status: 'streaming', from: addressOf(st, 'dc2-db') });
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('written on dc2 after the rejoin')`);
    await waitReplayed(st, 'dc1-db', 'dc2-db');
    assert.equal((await notes(st, 'dc1-db', 'written on dc2 before the rejoin %')).length, 30);
    assert.deepEqual(await notes(st, 'dc1-db', 'written on dc2 after the rejoin'), ['written on dc2 after the rejoin']);
    assert.deepEqual(await slotOn(st, 'dc2-db', st.cluster.postgres.nodes['dc1-db'].slot), { active: true });

    const done = r.steps.filter((s) => s.state === 'done').map((s) => s.name);
    assert.ok(done.indexOf('rewind') >= 0 && done.indexOf('rewind') < done.indexOf('basebackup'), `rewind tried before the base backup: ${done.join(', ')}`);
    assert.match(stepsNamed(r, /^rewind$/)[0].detail, /failed/);
  });
});

describe('switchover: the worker killed with SIGKILL while the run waits for dc2 to replay', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({ worker: false });
  });
  after(async () => {
    await stopWorkerProcesses();
    await st?.down();
  });

  it('a restarted worker finishes the run: dc2 primary one timeline on, every row there, dc1 follows it', { timeout: 300_000 }, async () => {
    const worker = () => startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    let w = worker();
    await w.waitFor((l) => l.msg === 'worker started');
    const tl = await timelineOf(st, 'dc1-db');
    await waitReplayed(st, 'dc2-db', 'dc1-db');

    // dc2 receives but does not replay: the switchover must wait for it.
    await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_pause()');
    for (let i = 0; (await st.nodeQuery('dc2-db', 'SELECT pg_get_wal_replay_pause_state() AS s'))[0].s !== 'paused'; i++) {
      assert.ok(i < 100, 'dc2 replay paused');
      await sleep(100);
    }
    const ids = (
      await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'before the switchover ' || g FROM generate_series(1, 25) g RETURNING id`)
    ).map((r) => String(r.id));
    assert.equal(
      (await st.nodeQuery('dc2-db', `SELECT count(*)::int AS n FROM public.sandbox_rows WHERE note LIKE 'before the switchover %'`))[0].n,
      0,
      'not replayed on dc2 yet',
    );

    const h = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, `switchover-crash-${Date.now()}`);
    await w.waitFor((l) => l.workflowId === h.workflowId && l.msg === 'step replay started', 120_000);
    assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');
    assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1 was stopped before the wait');

    w = worker();
    await w.waitFor((l) => l.msg === 'worker started');
    await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_resume()');
    const r = (await h.result()) as SwitchoverResult;
    log(`switchover after a crash: ${r.durationSeconds} s; ${r.state}`);
    assert.equal(r.outcome, 'completed', r.state);
    assert.deepEqual(r.timeline, { before: tl, after: tl + 1 });
    assert.equal(r.oldPrimary.streaming, true);
    assert.equal(r.oldPrimary.via, 'follow');

    assert.equal((await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'dc2 is the primary');
    assert.equal(await timelineOf(st, 'dc2-db'), tl + 1, 'promoted once: one new timeline');
    const onDc2 = new Set((await st.nodeQuery('dc2-db', 'SELECT id FROM public.sandbox_rows')).map((x) => String(x.id)));
    assert.deepEqual(
      ids.filter((id) => !onDc2.has(id)),
      [],
      'every row written on dc1 before the switchover is on dc2',
    );
    assert.deepEqual(await standbyOf(st, 'dc1-db'), { inRecovery: true, status: 'streaming', from: addressOf(st, 'dc2-db') });
    const [viaFront] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the switchover') RETURNING host(inet_server_addr()) AS s`);
    assert.equal(viaFront.s, st.cluster.postgres.nodes['dc2-db'].host);

    const p = await h.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^promote$/).filter((s) => s.state === 'done').length, 1);
    assert.equal(stepsNamed(p, /^replay$/).filter((s) => s.state === 'done').length, 1);
    assert.match(stepsNamed(p, /^replay$/)[0].detail, /^replayed up to /);
    await w.stop();
  });
});

describe('rejoin: the worker killed with SIGKILL during the base backup', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({ worker: false });
  });
  after(async () => {
    await stopWorkerProcesses();
    const dir = st?.sb.dir;
    await st?.down();
    if (dir) assert.equal(existsSync(dir), false, `the sandbox directory ${dir} (every data directory in it) is removed`);
  });

  it('a restarted worker copies again; every directory moved aside is kept; dc1 streams from dc2 with all its data', { timeout: 300_000 }, async () => {
    const worker = () => startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    let w: WorkerProcess = worker();
    await w.waitFor((l) => l.msg === 'worker started');
    const dataDir = st.cluster.postgres.nodes['dc1-db'].dataDir;

    // Enough data that a base backup takes seconds here.
    const t0 = Date.now();
    await st.nodeQuery('dc1-db', `CREATE TABLE public.big AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 300000) g`);
    await waitReplayed(st, 'dc2-db', 'dc1-db', 120_000);
    log(`big table: ${Date.now() - t0} ms; dc1 data directory ${mb(duSync(dataDir))}`);
    await failover(st);
    const ino = statSync(dataDir).ino;

    const h = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice', method: 'basebackup' }, `rejoin-crash-${Date.now()}`);
    await w.waitFor((l) => l.workflowId === h.workflowId && l.msg === 'step basebackup started', 120_000);
    // Killed once pg_basebackup has begun writing the new data directory.
    const copying = Date.now();
    for (;;) {
      const s = statSync(dataDir, { throwIfNoEntry: false });
      if (s && s.ino !== ino && basebackupsInto(dataDir).length > 0) break;
      assert.ok(Date.now() - copying < 60_000, 'pg_basebackup started');
      await sleep(50);
    }
    await sleep(500);
    assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');
    log(`killed ${Date.now() - copying} ms into the copy; new data directory ${mb(duSync(dataDir))} so far`);

    // The copy of the dead worker stops with it (its ssh session is gone).
    for (let i = 0; basebackupsInto(dataDir).length > 0; i++) {
      assert.ok(i < 100, `pg_basebackup still runs 10 s after the worker died: ${basebackupsInto(dataDir).join(', ')}`);
      await sleep(100);
    }
    w = worker();
    const r = (await h.result()) as RejoinResult;
    log(`rejoin after a crash: ${r.durationSeconds} s, copy ${r.copySeconds} s; moved aside ${r.movedAside.join(', ')}`);
    assert.equal(r.outcome, 'completed');
    assert.equal(r.method, 'basebackup');
    assert.equal(r.fellBackBecause, null);
    assert.ok(r.movedAside.length >= 1, JSON.stringify(r.movedAside));
    for (const d of r.movedAside) assert.ok(existsSync(d), `${d} is still on disk`);
    assert.deepEqual(asideOf(dataDir), [...r.movedAside].sort());
    const original = r.movedAside.filter((d) => statSync(d).ino === ino);
    assert.equal(original.length, 1, "dc1's old data directory is among them");
    assert.ok(existsSync(join(original[0], 'PG_VERSION')));
    assert.equal(r.movedAside.length, 2, 'the old directory and the copy the killed attempt had begun');

    assert.deepEqual(await standbyOf(st, 'dc1-db'), { inRecovery: true, status: 'streaming', from: addressOf(st, 'dc2-db') });
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('written on dc2 after the rejoin')`);
    await waitReplayed(st, 'dc1-db', 'dc2-db');
    assert.deepEqual(await notes(st, 'dc1-db', 'written on dc2 after the rejoin'), ['written on dc2 after the rejoin']);
    assert.equal((await st.nodeQuery('dc1-db', 'SELECT count(*)::int AS n FROM public.big'))[0].n, 300000);
    assert.deepEqual(await slotOn(st, 'dc2-db', st.cluster.postgres.nodes['dc1-db'].slot), { active: true });
    const p = await h.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^basebackup$/).filter((s) => s.state === 'done').length, 1);
    log(`sandbox ${st.sb.dir}: ${mb(duSync(st.sb.dir))} on disk before down()`);
    await w.stop();
  });
});
