/**
 * Backup retention, the readiness verdict on backup age, and the schedule's input checks: pure
 * functions, judged on made-up catalogs with known dates.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EbsBackupEntry, PgBackupEntry, PgBackupManifest } from '../../src/contract/backup';
import { backupArgs, checkCron, checkDuration, ScheduleInputError } from '../../src/client/schedule';
import { clusterLayout } from '../../src/topology/layout';
import { loadTopology } from '../../src/topology/load';
import { assessReadiness } from '../../src/workflows/lib/readiness-assess';
import { type Observations } from '../../src/contract/readiness';
import { backupIdFromWorkflowId, catalog, planRetention } from '../../src/workflows/lib/retention';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const DAY = 86400_000;
const at = (daysAgo: number) => new Date(NOW - daysAgo * DAY).toISOString();

function pg(id: string, daysAgo: number, opts: { proven?: boolean; complete?: boolean } = {}): PgBackupEntry {
  const complete = opts.complete ?? true;
  const manifest = complete ? ({ startedAt: at(daysAgo), finishedAt: at(daysAgo), totalBytes: 1000 } as PgBackupManifest) : null;
  return {
    backupId: id,
    dir: `/b/demo/${id}`,
    complete,
    manifest,
    drill: opts.proven ? { backupId: id, provenAt: at(daysAgo - 0.1), workflowId: 'w', rtoSeconds: 3, rpoSeconds: 100, rowCounts: {}, queries: [] } : null,
    modifiedAt: at(daysAgo),
  };
}

function ebs(id: string, daysAgo: number, snaps: string[]): EbsBackupEntry {
  return {
    backupId: id,
    node: 'dc2-db',
    createdAt: at(daysAgo),
    snapshots: snaps.map((s) => ({
      snapshotId: s,
      volumeId: 'vol-1',
      device: '/dev/sda1',
      sizeGiB: 8,
      state: 'completed',
      progress: '100%',
      startTime: at(daysAgo),
      description: null,
      tags: {},
    })),
    restore: null,
  };
}

const decide = (pgs: PgBackupEntry[], snaps: EbsBackupEntry[], keepLast: number, maxAgeDays: number, protect: string[] = []) =>
  Object.fromEntries(planRetention(catalog(pgs, snaps), { keepLast, maxAgeSeconds: maxAgeDays * 86400 }, NOW, protect).map((d) => [d.backupId, d.action]));

describe('retention: keep the last N and anything younger than the maximum age', () => {
  it('deletes exactly what is both beyond the last N and older than the maximum age', () => {
    const pgs = [pg('b1', 30), pg('b2', 20), pg('b3', 10), pg('b4', 3), pg('b5', 1)];
    assert.deepEqual(decide(pgs, [], 2, 14), { b5: 'keep', b4: 'keep', b3: 'keep', b2: 'delete', b1: 'delete' });
    // The last N wins over age: with keepLast 4 only the oldest goes.
    assert.deepEqual(decide(pgs, [], 4, 14), { b5: 'keep', b4: 'keep', b3: 'keep', b2: 'keep', b1: 'delete' });
    // Age wins over N: everything younger than 40 days stays.
    assert.deepEqual(decide(pgs, [], 1, 40), { b5: 'keep', b4: 'keep', b3: 'keep', b2: 'keep', b1: 'keep' });
  });

  it('never deletes the newest backup a drill proved restorable, however old', () => {
    const pgs = [pg('old-proven', 60, { proven: true }), pg('older-proven', 90, { proven: true }), pg('b1', 20), pg('b2', 2)];
    assert.deepEqual(decide(pgs, [], 1, 7), { b2: 'keep', b1: 'delete', 'old-proven': 'keep', 'older-proven': 'delete' });
  });

  it('treats a backup id as one unit: snapshots and the base backup go together, snapshot-only backups count too', () => {
    const decisions = planRetention(
      catalog([pg('b1', 30), pg('b2', 1)], [ebs('b1', 30, ['snap-1', 'snap-2']), ebs('s-only', 40, ['snap-3'])]),
      { keepLast: 1, maxAgeSeconds: 7 * 86400 },
      NOW,
    );
    const b1 = decisions.find((d) => d.backupId === 'b1')!;
    assert.equal(b1.action, 'delete');
    assert.equal(b1.pg, true);
    assert.deepEqual(b1.snapshots, ['snap-1', 'snap-2']);
    assert.equal(decisions.find((d) => d.backupId === 's-only')!.action, 'delete');
    assert.deepEqual(
      decisions.map((d) => d.backupId),
      ['b2', 'b1', 's-only'],
      'newest first',
    );
  });

  it('an interrupted base backup does not count towards the last N and goes once it is old', () => {
    const pgs = [pg('partial', 20, { complete: false }), pg('b1', 25), pg('b2', 30)];
    assert.deepEqual(decide(pgs, [], 2, 7), { partial: 'delete', b1: 'keep', b2: 'keep' });
  });

  it('keeps what this run made and says why for every decision', () => {
    const d = planRetention(catalog([pg('now', 30)], []), { keepLast: 1, maxAgeSeconds: 86400 }, NOW, ['now']);
    assert.deepEqual(
      d.map((x) => [x.action, x.why]),
      [['keep', 'made by this run']],
    );
    const d2 = planRetention(catalog([pg('a', 1), pg('b', 30)], []), { keepLast: 1, maxAgeSeconds: 7 * 86400 }, NOW);
    assert.match(d2[0].why, /one of the last 1/);
    assert.match(d2[1].why, /not among the last 1, 30 d old \(maximum age 7 d\)/);
  });
});

describe('backup ids from scheduled runs', () => {
  it('turns a schedule run id into a valid, stable backup id', () => {
    assert.equal(backupIdFromWorkflowId('switchyard-backup-demo-2026-11-29T18:00:00Z'), 'switchyard-backup-demo-2026-11-29T18-00-00Z');
    assert.equal(backupIdFromWorkflowId('backup-demo-20261129T180000-ab12cd'), 'backup-demo-20261129T180000-ab12cd');
    assert.match(backupIdFromWorkflowId('-/weird id/'), /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  });
});

describe('readiness: the newest proven-restorable backup against backup.maxRestorableAge', () => {
  const layout = clusterLayout('shop', loadTopology(join(__dirname, '../../examples/switchyard.yaml')).clusters.shop);
  const obs = (backups: Observations['backups']): Observations => ({
    layout,
    nodes: [],
    probe: null,
    lags: [],
    ssh: [],
    services: [],
    maintenance: [],
    traffic: [],
    ec2: null,
    backups,
  });
  const backupCheck = (b: Observations['backups'], now = '2026-11-29T12:00:00.000Z') => assessReadiness(obs(b), now).checks.find((c) => c.name === 'backup');

  it('passes with a backup proven within the bound (2d in the example), fails past it, names the age', () => {
    assert.equal(layout.backup?.maxRestorableAgeSeconds, 2 * 86400);
    const fresh = backupCheck({
      newestProven: { backupId: 'b9', provenAt: '2026-11-29T06:00:00Z', finishedAt: '2026-11-29T05:00:00Z' },
      complete: 3,
      error: null,
    });
    assert.equal(fresh?.ok, true);
    assert.match(fresh!.detail, /b9 is 7 h old/);
    const stale = backupCheck({
      newestProven: { backupId: 'b1', provenAt: '2026-11-25T06:00:00Z', finishedAt: '2026-11-25T05:00:00Z' },
      complete: 3,
      error: null,
    });
    assert.equal(stale?.ok, false);
    assert.match(stale!.detail, /4\.3 d old.*maximum 2 d/);
  });

  it('fails when no backup was ever proven, or the backup server cannot be asked', () => {
    const none = backupCheck({ newestProven: null, complete: 2, error: null });
    assert.equal(none?.ok, false);
    assert.match(none!.detail, /no backup has been proven restorable.*switchyard drill shop/);
    const err = backupCheck({ newestProven: null, complete: 0, error: 'ssh: cannot connect' });
    assert.equal(err?.ok, false);
    assert.match(err!.detail, /could not be asked: ssh: cannot connect/);
  });

  it('reports nothing when backups were not looked at (older runs)', () => {
    assert.equal(backupCheck(undefined), undefined);
  });
});

describe('schedule input', () => {
  it('accepts five cron fields and Temporal shorthands; refuses the rest before the server sees them', () => {
    assert.equal(checkCron('0 */6 * * *'), '0 */6 * * *');
    assert.equal(checkCron('@daily'), '@daily');
    assert.equal(checkCron('@every 6h'), '@every 6h');
    assert.throws(
      () => checkCron('every six hours'),
      (e: unknown) => e instanceof ScheduleInputError && /five cron fields/.test((e as Error).message),
    );
    assert.throws(() => checkCron('0 */6 * *'), ScheduleInputError);
    assert.throws(() => checkDuration('--max-age', '2 weeks'), /--max-age: expected a duration/);
  });

  it('passes retention overrides and the drill to each scheduled backup', () => {
    assert.deepEqual(backupArgs({ cluster: 'demo', cron: '@daily', keepLast: 14, maxAge: '14d', drill: true, catchupWindow: '1h', createdBy: 'alice' }), {
      cluster: 'demo',
      requestedBy: 'schedule switchyard-backup-demo (set by alice)',
      keepLast: 14,
      maxAge: '14d',
      drill: true,
    });
  });
});
