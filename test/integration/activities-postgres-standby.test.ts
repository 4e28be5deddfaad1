/**
 * The rejoin and switchover activities (postgres/: slots, rewind, basebackup, standby-config,
 * replication-waits, write-probe) against the real sandbox, in the order a person would run
 * them by hand: writes measured through a planned outage (dc1 stopped, dc2 promoted), dc1
 * started again on its own so that it diverges, then rejoined as a standby of dc2 with pg_rewind
 * (the diverged rows disappear, dc2's rows arrive), then rebuilt with pg_basebackup (the old
 * directory kept beside it). The sandbox is taken down in `after`.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createActivities, type Activities } from '../../src/activities';
import type { Topology } from '../../src/topology/schema';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { nodeQuery } from '../support/pg';

const CLUSTER = 'demo';
const LSN_RE = /^[0-9A-F]+\/[0-9A-F]+$/;

let sb: TestSandbox | undefined;
let act: Activities;
let top: Topology;

const node = (name: string) => top.clusters[CLUSTER].postgres.nodes[name];

/** A query as the tool's user, with the test's own client (not through the activities). */
const query = <T extends Record<string, unknown>>(nodeName: string, text: string, values: unknown[] = []) => nodeQuery<T>(top, CLUSTER, nodeName, text, values);

const notes = async (nodeName: string, like: string) =>
  (await query<{ note: string }>(nodeName, `SELECT note FROM public.sandbox_rows WHERE note LIKE $1 ORDER BY id`, [like])).map((r) => r.note);

/** With SWITCHYARD_TEST_VERBOSE=1: what an activity returned, for a person reading the run. */
function show<T>(label: string, v: T): T {
  if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(`[${label}] ${JSON.stringify(v, null, 2)}\n`);
  return v;
}

const appConf = (host: string) => join(sb!.dir, host, 'etc', 'app.conf');

before(async () => {
  sb = await startTestSandbox();
  top = sb.topology;
  act = createActivities({ topology: () => top });
});

after(async () => {
  await sb?.down();
});

describe('a planned outage, measured; then dc1 rejoins as a standby of dc2', () => {
  it("the sandbox gives each database host an app.conf and lists the other host's as the node's configFiles", () => {
    assert.match(readFileSync(appConf('dc1-db'), 'utf8'), /host = dc1-db/);
    assert.match(readFileSync(appConf('dc2-db'), 'utf8'), /host = dc2-db/);
    assert.deepEqual(node('dc1-db').configFiles, [{ from: appConf('dc2-db'), to: appConf('dc1-db') }]);
    assert.deepEqual(node('dc2-db').configFiles, [{ from: appConf('dc1-db'), to: appConf('dc2-db') }]);
  });

  it('writeProbeLoop measures the write outage of "stop dc1 (fast), promote dc2"', async () => {
    await query('dc1-db', `INSERT INTO public.sandbox_rows (note) VALUES ('before the switch')`);
    const loop = act.writeProbeLoop({ cluster: CLUSTER, expectNode: 'dc2-db', maxSeconds: 60 });
    await new Promise((r) => setTimeout(r, 700)); // a few accepted writes on dc1 first
    const fence = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(fence.fenced, true, fence.detail);
    const p = await act.pgPromote({ cluster: CLUSTER, node: 'dc2-db' });
    assert.equal(p.changed, true, p.detail);
    const m = show('writeProbeLoop', await loop);
    assert.equal(m.acceptedOn, 'dc2-db', m.detail);
    assert.ok(m.refused > 0, m.detail);
    assert.ok(m.downtimeMs !== null && m.downtimeMs > 0, m.detail);
    assert.ok(m.firstRefusedAt && m.firstAcceptedAfterRefusalAt && m.firstRefusedAt < m.firstAcceptedAfterRefusalAt);
    assert.ok(m.probes > m.refused, 'writes were taken before the outage');
    assert.deepEqual(await notes('dc2-db', 'before the switch'), ['before the switch'], 'dc2 has what dc1 committed');
  });

  it('pgRewind right after the clean switch: no rewind required (dc1 stopped at what dc2 had replayed)', async () => {
    const r = show('pgRewind (clean switch)', await act.pgRewind({ cluster: CLUSTER, node: 'dc1-db', source: 'dc2-db' }));
    assert.equal(r.ok, true, `${r.detail}\n${r.output}`);
    assert.equal(r.noRewindNeeded, true, `${r.detail}\n${r.output}`);
    assert.equal(r.divergedBytes, 0);
    assert.match(r.targetEndLsn ?? '', LSN_RE);
  });

  it('dc1 started on its own diverges: rows written there after the promotion', async () => {
    // The rewind left standby.signal: a reboot brings a rewound node up read-only. Starting it as a
    // primary takes removing it by hand, which is what this test does to make dc1 diverge.
    const signal = join(node('dc1-db').dataDir, 'standby.signal');
    assert.ok(existsSync(signal), 'pg_rewind left standby.signal');
    rmSync(signal);
    const start = await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(start.changed, true, start.detail);
    assert.equal((await query<{ r: boolean }>('dc1-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'dc1 is a (split) primary');
    await query('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'diverged on dc1 ' || g FROM generate_series(1, 500) g`);
    const f = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(f.fenced, true, f.detail);
    assert.equal(f.control?.state, 'shut down');
    await query('dc2-db', `INSERT INTO public.sandbox_rows (note) VALUES ('written on dc2 before the rejoin')`);
  });

  it('pgRewind refuses a running target (WrongRole) and a node as its own source (ConfigError)', async () => {
    await assert.rejects(
      act.pgRewind({ cluster: CLUSTER, node: 'dc2-db', source: 'dc1-db' }),
      (e: Error & { type?: string; nonRetryable?: boolean }) => e.type === 'WrongRole' && e.nonRetryable === true && /stop it first/.test(e.message),
    );
    await assert.rejects(act.pgRewind({ cluster: CLUSTER, node: 'dc1-db', source: 'dc1-db' }), { type: 'ConfigError' });
  });

  it("pgEnsureSlot makes dc1's slot on dc2 once", async () => {
    const s = await act.pgEnsureSlot({ cluster: CLUSTER, primary: 'dc2-db', slot: node('dc1-db').slot });
    assert.deepEqual([s.created, s.slot], [true, 'dc1_db'], s.detail);
    const again = await act.pgEnsureSlot({ cluster: CLUSTER, primary: 'dc2-db', slot: 'dc1_db' });
    assert.equal(again.created, false, again.detail);
    const rows = await query<{ n: string }>('dc2-db', `SELECT count(*) AS n FROM pg_replication_slots WHERE slot_name = 'dc1_db' AND restart_lsn IS NOT NULL`);
    assert.equal(rows[0].n, '1', 'the slot reserves WAL');
  });

  it('pgRewind of dc1 from dc2: the WAL dc1 wrote after the fork is measured and discarded', async () => {
    const r = show('pgRewind (diverged)', await act.pgRewind({ cluster: CLUSTER, node: 'dc1-db', source: 'dc2-db' }));
    assert.equal(r.ok, true, `${r.detail}\n${r.output}`);
    assert.equal(r.noRewindNeeded, false, r.detail);
    assert.match(r.divergedAtLsn ?? '', LSN_RE);
    assert.equal(r.divergedTimeline, 1);
    assert.ok(r.divergedBytes !== null && r.divergedBytes > 0, r.detail);
    assert.match(r.output, /Done!/);
    assert.ok(r.durationMs > 0);
    assert.ok(!r.output.includes(readFileSync(top.clusters[CLUSTER].postgres.password!.file!, 'utf8').trim()));
  });

  it('pgConfigureStandby writes standby.signal and the primary_* settings once', async () => {
    const n = node('dc1-db');
    const c = show('pgConfigureStandby', await act.pgConfigureStandby({ cluster: CLUSTER, node: 'dc1-db', primary: 'dc2-db' }));
    assert.equal(c.changed, true, c.detail);
    assert.ok(existsSync(join(n.dataDir, 'standby.signal')));
    const auto = readFileSync(join(n.dataDir, 'postgresql.auto.conf'), 'utf8');
    const dc2 = node('dc2-db');
    const passfile = top.clusters[CLUSTER].postgres.passfile!;
    assert.equal(
      auto
        .split('\n')
        .filter((l) => /^primary_conninfo/.test(l))
        .join('\n'),
      `primary_conninfo = 'host=${dc2.host} port=${dc2.port} user=replicator passfile=${passfile} application_name=dc1-db connect_timeout=5'`,
    );
    assert.match(auto, /^primary_slot_name = 'dc1_db'$/m);
    assert.match(auto, /^recovery_target_timeline = 'latest'$/m);
    assert.equal((statSync(join(n.dataDir, 'postgresql.auto.conf')).mode & 0o777).toString(8), '600');
    const again = await act.pgConfigureStandby({ cluster: CLUSTER, node: 'dc1-db', primary: 'dc2-db' });
    assert.equal(again.changed, false, again.detail);
  });

  it("copyConfigFiles brings dc2-db's app.conf to dc1-db", async () => {
    const before = statSync(appConf('dc1-db')).mode & 0o777;
    const r = await act.copyConfigFiles({ cluster: CLUSTER, node: 'dc1-db', from: 'dc2-db' });
    assert.equal(r.files.length, 1);
    assert.deepEqual([r.files[0].source, r.files[0].target, r.files[0].changed], [appConf('dc2-db'), appConf('dc1-db'), true]);
    assert.equal(readFileSync(appConf('dc1-db'), 'utf8'), readFileSync(appConf('dc2-db'), 'utf8'));
    assert.match(readFileSync(appConf('dc1-db'), 'utf8'), /host = dc2-db/);
    assert.equal(statSync(appConf('dc1-db')).mode & 0o777, before, 'the target keeps its mode');
    assert.equal(r.files[0].bytes, statSync(appConf('dc2-db')).size);
    const again = await act.copyConfigFiles({ cluster: CLUSTER, node: 'dc1-db', from: 'dc2-db' });
    assert.equal(again.files[0].changed, false);
  });

  it("dc1 starts as a standby and streams from dc2: its diverged rows are gone, dc2's rows arrive", async () => {
    const start = await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(start.running, true, start.detail);
    const s = show(
      'pgWaitStreaming',
      await act.pgWaitStreaming({ cluster: CLUSTER, node: 'dc1-db', primary: 'dc2-db', maxLagBytes: 1024 * 1024, timeoutSeconds: 60 }),
    );
    assert.equal(s.streaming, true, s.detail);
    assert.ok(s.lagBytes !== null && s.lagBytes <= 1024 * 1024);
    assert.equal((await query<{ r: boolean }>('dc1-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, true);
    assert.deepEqual(await notes('dc1-db', 'diverged on dc1%'), [], 'what dc1 wrote on its own was rewound away');
    assert.deepEqual(await notes('dc1-db', 'written on dc2 before the rejoin'), ['written on dc2 before the rejoin']);

    await query('dc2-db', `INSERT INTO public.sandbox_rows (note) VALUES ('written on dc2 after the rejoin')`);
    const [{ lsn }] = await query<{ lsn: string }>('dc2-db', 'SELECT pg_current_wal_lsn()::text AS lsn');
    const w = await act.pgWaitReplay({ cluster: CLUSTER, node: 'dc1-db', lsn, timeoutSeconds: 30 });
    assert.equal(w.reached, true, w.detail);
    assert.deepEqual(await notes('dc1-db', 'written on dc2 after the rejoin'), ['written on dc2 after the rejoin']);
    const slot = await query<{ active: boolean }>('dc2-db', `SELECT active FROM pg_replication_slots WHERE slot_name = 'dc1_db'`);
    assert.equal(slot[0].active, true, 'dc1 streams through its slot');
  });

  it('pgWaitReplay and pgWaitStreaming give up at their timeout without throwing', async () => {
    const far = await act.pgWaitReplay({ cluster: CLUSTER, node: 'dc1-db', lsn: 'FF/0', timeoutSeconds: 1 });
    assert.equal(far.reached, false);
    assert.match(far.replayLsn ?? '', LSN_RE);
    assert.ok(far.waitedMs >= 1000);
    const wrong = show(
      'pgWaitStreaming (timeout)',
      await act.pgWaitStreaming({ cluster: CLUSTER, node: 'dc2-db', primary: 'dc1-db', maxLagBytes: 0, timeoutSeconds: 1 }),
    );
    assert.equal(wrong.streaming, false);
    assert.match(wrong.detail, /dc2-db .* is not in recovery/);
    assert.match(wrong.detail, /last lines of .*switchyard-pg\.log|switchyard-pg\.log on dc2-db: tail exited/);
  });

  it('pgEnsureSlot refuses a standby as the primary (WrongRole)', async () => {
    await assert.rejects(act.pgEnsureSlot({ cluster: CLUSTER, primary: 'dc1-db', slot: 'x' }), { type: 'WrongRole', nonRetryable: true });
  });
});

describe('rebuilding dc1 with pg_basebackup', () => {
  it('refuses while dc1 runs (WrongRole)', async () => {
    await assert.rejects(act.pgBasebackup({ cluster: CLUSTER, node: 'dc1-db', source: 'dc2-db' }), { type: 'WrongRole', nonRetryable: true });
  });

  it('moves the old data directory aside (kept), copies dc2, and dc1 streams again', async () => {
    const n = node('dc1-db');
    const f = await act.pgFence({ cluster: CLUSTER, node: 'dc1-db' });
    assert.equal(f.fenced, true, f.detail);
    const oldId = readFileSync(join(n.dataDir, 'PG_VERSION'), 'utf8');
    const b = show('pgBasebackup', await act.pgBasebackup({ cluster: CLUSTER, node: 'dc1-db', source: 'dc2-db' }));
    assert.equal(b.movedAside.length, 1, b.detail);
    assert.match(b.movedAside[0], new RegExp(`^${n.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.switchyard-\\d{8}T\\d{6}Z$`));
    assert.equal(readFileSync(join(b.movedAside[0], 'PG_VERSION'), 'utf8'), oldId, 'the old directory is still on disk, whole');
    assert.ok(existsSync(join(b.movedAside[0], 'standby.signal')), 'it is the one configured as a standby');
    assert.ok(existsSync(join(n.dataDir, 'PG_VERSION')));
    assert.equal((statSync(n.dataDir).mode & 0o777).toString(8), '700');
    assert.ok(existsSync(join(n.dataDir, 'standby.signal')), 'the copy comes up read-only even if started before it is configured (a reboot mid-rejoin)');

    const c = await act.pgConfigureStandby({ cluster: CLUSTER, node: 'dc1-db', primary: 'dc2-db' });
    assert.equal(c.changed, true, c.detail);
    await act.pgStart({ cluster: CLUSTER, node: 'dc1-db' });
    const s = await act.pgWaitStreaming({ cluster: CLUSTER, node: 'dc1-db', primary: 'dc2-db', maxLagBytes: 1024 * 1024, timeoutSeconds: 60 });
    assert.equal(s.streaming, true, s.detail);
    const [a] = await query<{ n: string }>('dc2-db', 'SELECT count(*) AS n FROM public.sandbox_rows');
    await query('dc2-db', `INSERT INTO public.sandbox_rows (note) VALUES ('after the base backup')`);
    const [{ lsn }] = await query<{ lsn: string }>('dc2-db', 'SELECT pg_current_wal_lsn()::text AS lsn');
    assert.equal((await act.pgWaitReplay({ cluster: CLUSTER, node: 'dc1-db', lsn, timeoutSeconds: 30 })).reached, true);
    const [b2] = await query<{ n: string }>('dc1-db', 'SELECT count(*) AS n FROM public.sandbox_rows');
    assert.equal(Number(b2.n), Number(a.n) + 1);
  });
});
