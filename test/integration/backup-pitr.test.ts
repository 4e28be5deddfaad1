/**
 * Point-in-time recovery on the sandbox (real PostgreSQL, pg_receivewal on the backup host, the
 * walArchive workflow): row A written, time T noted, row B written; a drill to T finds A and not B.
 * Then dc1 is lost and dc2 promoted by a failover: the archive follows dc2 on its new timeline,
 * and a drill to a time after the failover finds the rows written on dc2 before it and not after.
 * Readiness reports the archive's lag and fails past backup.maxArchiveLag; retention prunes the
 * segments no kept backup needs.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stopPart } from '../../sandbox';
import { decide } from '../../src/client/runs';
import { parseSegmentName, segnoOfLsn, walArchiveStatusQuery, walArchiveWorkflowId, type WalArchiveState } from '../../src/contract/wal-archive';
import type { ReadinessReport } from '../../src/contract/readiness';
import type { BackupRetentionResult, DrillResult } from '../../src/workflows/backup';
import type { Progress } from '../../src/contract/messages';
import type { RestoreResult } from '../../src/workflows/restore';
import { startStage, type Stage } from '../support/stage';
import { storeOf } from '../support/store';
import { sleep, waitingAt, waitReplayed } from '../support/runs';

const log = (s: string) => process.stdout.write(`# ${s}\n`);

/** Until the archive has flushed the primary's current position (what a drill to "now" needs). */
async function waitArchived(st: Stage, primary: string, timeoutMs = 60_000): Promise<void> {
  const [{ lsn }] = await st.nodeQuery(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
  for (const t0 = Date.now(); ; await sleep(200)) {
    const rows = await st
      .nodeQuery(primary, `SELECT flush_lsn >= $1::pg_lsn AS ok FROM pg_stat_replication WHERE application_name = 'switchyard-archive'`, [lsn])
      .catch(() => []);
    if (rows.some((r) => r.ok === true)) return;
    assert.ok(Date.now() - t0 < timeoutMs, `the archive reached ${lsn} on ${primary}`);
  }
}

function startArchive(st: Stage) {
  return st.client.workflow.start('walArchive', {
    taskQueue: 'switchyard',
    workflowId: walArchiveWorkflowId('demo'),
    args: [{ cluster: 'demo', requestedBy: 'alice' }],
  });
}

/** A base backup, then row A, the time T, row B (a second apart), archived: returns T. */
async function backupThenAtoB(st: Stage): Promise<string> {
  await st.nodeQuery('dc1-db', 'CREATE TABLE public.pitr (id text PRIMARY KEY, at timestamptz DEFAULT now())');
  await (await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false }, `pitr-base-${Date.now()}`)).result();
  await st.nodeQuery('dc1-db', "INSERT INTO public.pitr (id) VALUES ('A')");
  await sleep(1100);
  const [{ t }] = await st.nodeQuery('dc1-db', 'SELECT now()::text AS t');
  await sleep(1100);
  await st.nodeQuery('dc1-db', "INSERT INTO public.pitr (id) VALUES ('B')");
  await waitArchived(st, 'dc1-db');
  return new Date(String(t)).toISOString();
}

async function pitrDrill(st: Stage, targetTime: string, id: string): Promise<DrillResult> {
  const h = await st.start('drill', { cluster: 'demo', requestedBy: 'alice', targetTime }, id);
  return (await h.result().catch(async (err: unknown) => {
    // The drill's own words (and its step log) rather than "Workflow execution failed".
    const p = await h.query<Progress>('progress').catch(() => null);
    throw new Error(
      `${(err as { cause?: Error }).cause?.message ?? String(err)}\n${p?.steps.map((x) => `${x.name} ${x.state}: ${x.detail}`).join('\n') ?? ''}`,
    );
  })) as DrillResult;
}

describe('point-in-time recovery from the WAL archive', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({
      edit: (c) => {
        (c.backup as Record<string, unknown>).maxArchiveLag = '1m';
        // Its file set lives at dc1, which this test loses: the backups here are of the database.
        delete (c.backup as Record<string, unknown>).files;
      },
    });
  });
  after(async () => {
    await st?.down();
  });

  it('a drill to T finds row A and not row B; after a failover the archive follows dc2 and a drill after it finds dc2 rows', { timeout: 420_000 }, async () => {
    // Readiness before the archiver runs: the lag is unknown, and unknown fails.
    const before = (await (await st.start('readiness', { cluster: 'demo' }, `readiness-no-archive-${Date.now()}`)).result()) as ReadinessReport;
    const archiveCheck = before.checks.find((c) => c.name === 'archive');
    assert.equal(archiveCheck?.ok, false, JSON.stringify(archiveCheck));
    assert.match(archiveCheck?.detail ?? '', /not running|never started/);

    await startArchive(st);
    const T = await backupThenAtoB(st);

    const ready = (await (await st.start('readiness', { cluster: 'demo' }, `readiness-archive-${Date.now()}`)).result()) as ReadinessReport;
    const lag = ready.checks.find((c) => c.name === 'archive');
    assert.equal(lag?.ok, true, JSON.stringify(lag));
    assert.match(lag?.detail ?? '', /streams from dc1-db: \d+ bytes/);
    log(`readiness: ${lag?.detail}`);

    const d1 = await pitrDrill(st, T, `drill-pitr-1-${Date.now()}`);
    assert.equal(d1.ok, true, d1.detail);
    assert.equal(d1.rowCounts['public.pitr'], 1, `row A and not row B at ${T}: ${JSON.stringify(d1.rowCounts)}`);
    assert.ok(d1.reached && Date.parse(d1.reached.lastReplayAt ?? '') <= Date.parse(T), JSON.stringify(d1.reached));
    log(`drill to ${T}: ${d1.detail}`);

    // dc1 lost; dc2 promoted by a failover approved by a second person.
    await waitReplayed(st, 'dc2-db', 'dc1-db');
    await stopPart(st.sb.opts, 'dc1', 'kill');
    const f = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost' }, `failover-pitr-${Date.now()}`);
    await st.waitProgress(f.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
    await decide(st.client, f.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
    // A data-loss gate comes when dc1's last position is only a lower bound: approved too.
    for (const t0 = Date.now(); (await f.describe()).status.name === 'RUNNING'; await sleep(300)) {
      const p = await f.query<Progress>('progress').catch(() => null);
      if (p?.waitingFor === 'accept-data-loss') await decide(st.client, f.workflowId, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' });
      assert.ok(Date.now() - t0 < 180_000, 'the failover ends');
    }
    await f.result();

    // The archive follows dc2 within an interval.
    const h = st.client.workflow.getHandle(walArchiveWorkflowId('demo'));
    for (const t0 = Date.now(); ; await sleep(500)) {
      const s: WalArchiveState = await h.query(walArchiveStatusQuery);
      if (s.following === 'dc2-db') {
        log(`archive: ${s.events.map((e) => `${e.action} ${e.node}`).join(', ')}`);
        break;
      }
      assert.ok(Date.now() - t0 < 60_000, `the archive follows dc2-db: ${JSON.stringify(s)}`);
    }
    await st.nodeQuery('dc2-db', "INSERT INTO public.pitr (id) VALUES ('C')");
    await sleep(1100);
    const [{ t: t2 }] = await st.nodeQuery('dc2-db', 'SELECT now()::text AS t');
    const T2 = new Date(String(t2)).toISOString();
    await sleep(1100);
    await st.nodeQuery('dc2-db', "INSERT INTO public.pitr (id) VALUES ('D')");
    await waitArchived(st, 'dc2-db');
    const walDir = join(st.cluster.backup!.root, 'demo', '.wal');
    const histories = readdirSync(walDir).filter((n) => n.endsWith('.history'));
    assert.ok(histories.length >= 1, `the new timeline's history is archived: ${readdirSync(walDir).join(', ')}`);

    // Finished segments reach the store too.
    const [{ seg }] = await st.nodeQuery('dc2-db', 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg');
    await st.nodeQuery('dc2-db', 'SELECT pg_switch_wal()');
    const { s3, bucket, prefix } = storeOf(st);
    const walKeys = async () =>
      ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}demo/wal/` }))).Contents ?? []).map((o) => o.Key!.split('/').pop()!);
    for (const t0 = Date.now(); !(await walKeys()).includes(String(seg)); await sleep(500))
      assert.ok(Date.now() - t0 < 60_000, `segment ${seg} copied to the store: ${(await walKeys()).join(', ')}`);
    assert.ok(
      (await walKeys()).some((k) => k.endsWith('.history')),
      'with the timeline history',
    );

    const d2 = await pitrDrill(st, T2, `drill-pitr-2-${Date.now()}`);
    assert.equal(d2.ok, true, d2.detail);
    const rows = await st.nodeQuery('dc2-db', 'SELECT count(*)::int AS n FROM public.pitr WHERE at <= $1', [T2]);
    assert.equal(d2.rowCounts['public.pitr'], Number(rows[0].n), `the rows up to T2 on dc2 (C and what dc1 had, not D): ${JSON.stringify(d2.rowCounts)}`);
    assert.ok((d2.reached?.timeline ?? 0) >= 2, `replayed onto the failover's timeline: ${JSON.stringify(d2.reached)}`);
    log(`drill to ${T2} after the failover: ${d2.detail}`);

    // Retention: a newer backup, proven by a drill, lets the first go, and with it the WAL only the first needed.
    const second = `pitr-second-${Date.now()}`;
    await (await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'], retention: false, drill: true }, second)).result();
    const segsBefore = readdirSync(walDir).filter((n) => /^[0-9A-F]{24}/.test(n));
    const r = (await (
      await st.start('backupRetention', { cluster: 'demo', requestedBy: 'alice', keepLast: 1, maxAge: '1s' }, `retention-pitr-${Date.now()}`)
    ).result()) as BackupRetentionResult;
    const prune = r.steps.find((x) => x.name === 'prune:wal');
    assert.equal(prune?.state, 'done', JSON.stringify(prune));
    const manifest = JSON.parse(readFileSync(join(st.cluster.backup!.root, 'demo', second, 'switchyard-manifest.json'), 'utf8')) as { startLsn: string };
    const firstNeeded = segnoOfLsn(manifest.startLsn);
    const after = readdirSync(walDir).filter((n) => /^[0-9A-F]{24}/.test(n));
    assert.ok(after.length < segsBefore.length, `segments pruned: ${segsBefore.length} → ${after.length}`);
    assert.ok(
      after.every((n) => parseSegmentName(n)!.segno >= firstNeeded),
      `only what the kept backup (start ${manifest.startLsn}) needs is left: ${after.join(', ')}`,
    );
    assert.ok(
      readdirSync(walDir).some((n) => n.endsWith('.history')),
      'history files kept',
    );
    assert.ok(
      (await walKeys()).every((k) => !parseSegmentName(k) || parseSegmentName(k)!.segno >= firstNeeded),
      'and in the store',
    );
    log(`retention: ${prune?.detail}`);
    s3.destroy();
    await h.signal('stop', { by: 'alice' });
    await h.result();
  });
});

describe('a point-in-time restore onto the primary', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({});
  });
  after(async () => {
    await st?.down();
  });

  it('restore --target-time T: the primary holds row A and not row B, takes writes, and its recovery settings are gone', { timeout: 300_000 }, async () => {
    await startArchive(st);
    const T = await backupThenAtoB(st);

    const h = await st.start('restore', { cluster: 'demo', targetTime: T, target: 'dc1-db', requestedBy: 'alice' }, `restore-pitr-${Date.now()}`);
    await st.waitProgress(h.workflowId, waitingAt('replace-data'), 'the replace-data checkpoint', 180_000);
    await decide(st.client, h.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
    const r = (await h.result()) as RestoreResult;
    assert.equal(r.outcome, 'completed', r.state);
    assert.ok(r.reached && Date.parse(r.reached.lastReplayAt ?? '') <= Date.parse(T), JSON.stringify(r.reached));
    const ids = (await st.nodeQuery('dc1-db', 'SELECT id FROM public.pitr ORDER BY id')).map((x) => x.id);
    assert.deepEqual(ids, ['A'], `row A and not row B at ${T}`);
    const [{ rec }] = await st.nodeQuery('dc1-db', 'SELECT pg_is_in_recovery() AS rec');
    assert.equal(rec, false, 'a primary again');
    await st.nodeQuery('dc1-db', "INSERT INTO public.pitr (id) VALUES ('E')");
    // Reset in the files (the running server keeps a postmaster-level value until its next start): a later
    // standby.signal must not stop at the old target.
    const settings = await st.nodeQuery(
      'dc1-db',
      "SELECT name, setting, sourcefile FROM pg_file_settings WHERE name IN ('recovery_target_time', 'restore_command', 'recovery_target_action', 'recovery_target_timeline')",
    );
    assert.deepEqual(settings, [], 'the recovery settings are gone from the configuration files');
    log(`restore to ${T}: ${r.state}`);
    await st.client.workflow.getHandle(walArchiveWorkflowId('demo')).signal('stop', { by: 'alice' });
  });
});
