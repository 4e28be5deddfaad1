/**
 * Backups, run by hand or by a Temporal Schedule:
 *
 *   backup:  layout → source (a streaming standby within the lag bound, else the primary) →
 *            EBS snapshots of the source's volumes (found again by backup id on a resumed run) →
 *            base backup on the backup server (pg_basebackup, tar, gzip, WAL streamed; manifest
 *            with LSNs, timeline, version, sizes, SHA-256) → snapshots completed → retention →
 *            optional drill (child run `<id>-drill`).
 *   backupRetention: the same retention alone, with a dry run.
 *   drill:   restore a base backup into a scratch copy on the backup server, verify it, record
 *            RTO and RPO, remove it, and mark the backup proven restorable.
 *
 * Backups take no cluster lock: they never block a failover (their own workflow ids, read-only
 * towards the database). The backup id comes from the input or, for a scheduled run, from the
 * workflow id the schedule gave the run, so a resumed or retried run never makes a second backup.
 */
import { ApplicationFailure, executeChild, patched, workflowInfo } from '@temporalio/workflow';
import {
  BACKUP_ID_RE,
  type EbsCopyWaitResult,
  type EbsSnapshotCopyResult,
  type PgBackupUploadResult,
  type EbsSnapshotCreateResult,
  type EbsSnapshotWaitResult,
  type PgBackupCreateResult,
  type PgBackupEntry,
  type PgDrillResult,
} from '../contract/backup';
import { DURATION_RE, durationSeconds } from '../topology/duration';
import type { ClusterLayout } from '../topology/layout';
import { formatBytes } from '../contract/format';
import { archiveCalls, calls, copying } from './lib/backup-activities';
import { lsnToBigInt } from '../contract/lsn';
import { fileSetCopying } from './lib/file-set-activities';
import type { FileSetBackupResult } from '../contract/backup-files';
import { describeNode, notifyVia, reads, seconds } from './lib/runbook';
import { backupIdFromWorkflowId, catalog, formatAge, planRetention, type RetentionDecision } from './lib/retention';
import { messageOf, StepLog } from './lib/steps';
import { checkTargetTime } from './lib/target-time';
import type { PlanStep, StepRecord } from '../contract/messages';

export type BackupKind = 'pg' | 'ebs';

/** Runs recorded before the store existed made no upload step. */
export const STORE_UPLOAD_PATCH = 'backup-store-upload';

/** Runs recorded before WAL archiving existed pruned no WAL. */
export const WAL_PRUNE_PATCH = 'retention-prune-wal';

/** Where the WAL the oldest of these backups needs begins (its start LSN and timeline); null for none. */
function oldestStart(kept: PgBackupEntry[]): { timeline: number; lsn: string } | null {
  let best: { timeline: number; lsn: string } | null = null;
  for (const b of kept) {
    const m = b.manifest;
    if (!m) continue;
    if (!best || lsnToBigInt(m.startLsn) < lsnToBigInt(best.lsn)) best = { timeline: m.timeline, lsn: m.startLsn };
  }
  return best;
}

/** Runs recorded before EBS copies existed made no copy, copy-wait or copy-region retention steps. */
export const EBS_COPIES_PATCH = 'backup-ebs-copies';

/** Runs recorded before file sets existed archived none (backup.files). */
export const FILE_SETS_PATCH = 'backup-file-sets';

export interface BackupInput {
  cluster: string;
  kinds?: BackupKind[];
  requestedBy?: string;
  /** Given by the caller, or derived from the workflow id (a schedule's run ids are unique and stable). */
  backupId?: string;
  /** Follow the backup with a drill (child run) that proves it restores. */
  drill?: boolean;
  /** Apply retention afterwards (default true). */
  retention?: boolean;
  /** Retention overrides for this run (a schedule's --keep-last / --max-age); default the topology's. */
  keepLast?: number;
  maxAge?: string;
  /** Choose the source and show what would be made and what retention would delete; make and delete nothing. */
  dryRun?: boolean;
}

export interface BackupResult {
  cluster: string;
  backupId: string;
  /** A dry run: nothing was made or deleted; `plan` says what would be. */
  dryRun: boolean;
  plan: PlanStep[];
  source: { node: string; role: 'primary' | 'standby'; why: string };
  pg: {
    dir: string;
    totalBytes: number;
    files: { name: string; bytes: number }[];
    startLsn: string;
    endLsn: string;
    timeline: number;
    pgVersion: string;
    created: boolean;
    durationSeconds: number;
    /** Its offsite copy (backup.store): absent without a store. */
    store?: { url: string; uploaded: string[]; found: string[]; bytesUploaded: number; durationSeconds: number } | null;
  } | null;
  ebs: {
    instanceId: string;
    snapshots: { snapshotId: string; volumeId: string; device: string | null; sizeGiB: number | null; state: string }[];
    created: string[];
    found: string[];
    durationSeconds: number;
    apiRetries: number;
  } | null;
  retention: RetentionOutcome | null;
  drill: DrillResult | null;
  /** The snapshots' copies in other regions (backup.ebs.copyTo); absent when there are none. */
  copies?: BackupCopy[];
  /** The file sets archived with the base backup (backup.files); absent when there are none. */
  files?: BackupFileSet[];
  durationSeconds: number;
  steps: StepRecord[];
}

/** One file set of the backup. */
export type BackupFileSet = FileSetBackupResult;

/** One copy region's copies of the backup's snapshots. */
export interface BackupCopy {
  region: string;
  /** Every copy completed (false with `failure` saying why). */
  completed: boolean;
  snapshots: { sourceSnapshotId: string; snapshotId: string; device: string | null; state: string }[];
  created: string[];
  found: string[];
  durationSeconds: number;
  failure: string | null;
}

/** Retention in one copy region, by its own keepLast and maxAge, of the copies there. */
export interface CopyRetentionOutcome {
  region: string;
  decisions: RetentionDecision[];
  deleted: string[];
  failed: string[];
}

export interface RetentionOutcome {
  dryRun: boolean;
  decisions: RetentionDecision[];
  deleted: string[];
  failed: string[];
  /** Kept this time: a drill or a restore was reading it (its lock held); the next run deletes it. */
  skipped?: string[];
  /** Each copy region's own retention (backup.ebs.copyTo); absent when there are none. */
  copies?: CopyRetentionOutcome[];
}

/** The one place a backup's result is built (a dry run or a backup made), with the step log as it is now. */
function backupResult(
  run: Pick<BackupResult, 'cluster' | 'backupId' | 'source'> & { steps: StepLog },
  o: Pick<BackupResult, 'dryRun' | 'plan' | 'pg' | 'ebs' | 'retention' | 'drill' | 'copies' | 'files' | 'durationSeconds'>,
): BackupResult {
  return {
    cluster: run.cluster,
    backupId: run.backupId,
    dryRun: o.dryRun,
    plan: o.plan,
    source: run.source,
    pg: o.pg,
    ebs: o.ebs,
    retention: o.retention,
    drill: o.drill,
    ...(o.copies ? { copies: o.copies } : {}),
    ...(o.files ? { files: o.files } : {}),
    durationSeconds: o.durationSeconds,
    steps: run.steps.snapshot(),
  };
}

function needBackupSection(layout: ClusterLayout): NonNullable<ClusterLayout['backup']> {
  if (!layout.backup)
    throw ApplicationFailure.nonRetryable(
      `cluster ${layout.cluster} has no "backup" section in the topology (backup server host, root, binDir)`,
      'ConfigError',
    );
  return layout.backup;
}

/** Who asked: the input's requestedBy, or "schedule" for a run a Temporal Schedule started. */
function requester(input: { requestedBy?: unknown }): string {
  return typeof input.requestedBy === 'string' && input.requestedBy.trim() ? input.requestedBy.trim() : 'schedule';
}

function clusterOf(operation: string, input: unknown): string {
  if (!input || typeof input !== 'object' || typeof (input as { cluster?: unknown }).cluster !== 'string' || !(input as { cluster: string }).cluster) {
    throw ApplicationFailure.nonRetryable(`${operation} input needs "cluster": the name of the cluster`, 'ConfigError');
  }
  return (input as { cluster: string }).cluster;
}

const apiNote = (retries: number) => (retries ? `; EC2 API retries: ${retries}` : '');

export async function backup(input: BackupInput): Promise<BackupResult> {
  const cluster = clusterOf('backup', input);
  const steps = new StepLog('backup', cluster);
  const { workflowId } = workflowInfo();
  const requestedBy = requester(input);
  const startedMs = Date.now();
  const backupId = input.backupId ?? backupIdFromWorkflowId(workflowId);
  if (!BACKUP_ID_RE.test(backupId)) {
    throw ApplicationFailure.nonRetryable(
      `"backupId" must be 1 to 128 letters, digits, ".", "_" or "-" starting with a letter or digit; got ${JSON.stringify(backupId)}`,
      'ConfigError',
    );
  }
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `backup server ${l.backup?.host ?? 'none'}; kinds ${l.backup?.kinds.join(', ') ?? 'none'}`,
  );
  const cfg = needBackupSection(layout);
  const kinds = input.kinds ?? cfg.kinds;
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => k !== 'pg' && k !== 'ebs')) {
    throw ApplicationFailure.nonRetryable(
      `"kinds" must be a non-empty list of "pg" (base backup) and "ebs" (snapshots); got ${JSON.stringify(input.kinds)}`,
      'ConfigError',
    );
  }
  if (kinds.includes('ebs') && !layout.nodes.every((n) => n.ec2)) {
    throw ApplicationFailure.nonRetryable(
      `EBS snapshot backups of ${cluster} need an EC2 selector on every database node (postgres.nodes.<node>.ec2)`,
      'ConfigError',
    );
  }
  const policy = policyOf(cfg, input);
  const notify = notifyVia(layout.notify, cluster, workflowId);
  steps.note('backup-id', `${backupId} (${kinds.join(' + ')}), requested by ${requestedBy}`);

  // ---- source: spare the primary when a standby is healthy ------------------------------------
  const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`status:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
  const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
  let source: BackupResult['source'] | null = null;
  if (primaries.length === 1) {
    const primary = primaries[0];
    for (const s of nodes.filter((n) => n.reachable && n.inRecovery === true && n.walReceiver?.status === 'streaming')) {
      const lag = await steps.run(
        `lag:${s.node}`,
        () => reads.pgLag({ cluster, primary: primary.node, standby: s.node }),
        (l) => `${l.lagBytes ?? '?'} bytes behind`,
      );
      if (lag.lagBytes !== null && lag.lagBytes <= layout.maxLagBytes) {
        source = { node: s.node, role: 'standby', why: `${s.node} streams from ${primary.node}, ${lag.lagBytes} bytes behind: the primary is spared` };
        break;
      }
    }
    source ??= { node: primary.node, role: 'primary', why: `no standby streams within ${layout.maxLagBytes} bytes of ${primary.node}: backing up the primary` };
  } else if (primaries.length === 0) {
    const standby = nodes.find((n) => n.reachable && n.inRecovery === true);
    if (!standby)
      throw ApplicationFailure.nonRetryable(
        `no database node of ${cluster} answers (${nodes.map((n) => `${n.node}: ${describeNode(n)}`).join('; ')}): nothing to back up`,
        'PreconditionFailed',
      );
    source = { node: standby.node, role: 'standby', why: `no primary answers; ${standby.node} is the only node that does` };
  } else {
    throw ApplicationFailure.nonRetryable(
      `${cluster} has ${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}): a split brain needs a person, not a backup`,
      'PreconditionFailed',
    );
  }
  steps.note('source', source.why);

  if (input.dryRun === true) {
    const src = source;
    const plan: PlanStep[] = [
      ...(kinds.includes('ebs')
        ? [
            {
              step: 'snapshot',
              target: src.node,
              action: `snapshot every EBS volume of ${src.node}'s instance together, tagged with backup id ${backupId}; wait until completed`,
            },
            ...(cfg.ebs?.copyTo ?? []).map((t) => ({
              step: `copy:${t.region}`,
              target: t.region,
              action:
                `copy each snapshot to ${t.region}${t.kmsKeyId ? ` (encrypted with ${t.kmsKeyId})` : ''}, tagged with its source; wait until completed; ` +
                `there keep the last ${t.keepLast} and anything younger than ${formatAge(t.maxAgeSeconds)}`,
            })),
          ]
        : []),
      ...(kinds.includes('pg')
        ? [
            {
              step: 'base-backup',
              target: cfg.host,
              action:
                `pg_basebackup from ${src.node} (${src.role}) into ${cfg.root}/${cluster}/${backupId}/ ` +
                `with a manifest (LSNs, timeline, version, sizes, SHA-256)`,
            },
          ]
        : []),
      ...(kinds.includes('pg') && cfg.store
        ? [
            {
              step: 'upload',
              target: cfg.store,
              action: `copy the base backup's files to ${cfg.store}${cluster}/${backupId}/, each checked against the manifest's SHA-256, the manifest last`,
            },
          ]
        : []),
      ...(kinds.includes('pg')
        ? (cfg.files ?? []).map((f) => ({
            step: `files:${f.set}`,
            target: f.host,
            action:
              `archive ${f.paths.join(', ')} on ${f.host} (tar, a manifest of owners, modes, sizes and SHA-256)${f.encrypt ? ', encrypted in the worker (AES-256-GCM)' : ''} ` +
              `into ${cfg.root}/${cluster}/${backupId}/files/${f.set}/${cfg.store ? `, then ${cfg.store}` : ''}`,
          }))
        : []),
      { step: 'retention', target: cluster, action: 'delete what the decisions below mark DELETE' },
      ...(input.drill
        ? [{ step: 'drill', target: cfg.host, action: `restore ${backupId} into a scratch copy on port ${cfg.drillPort}, verify, remove it` }]
        : []),
    ];
    steps.note('plan', plan.map((p) => `${p.step} → ${p.action}`).join('; '));
    const retention = input.retention === false ? null : await applyRetention(steps, cluster, policy, true, [backupId]);
    return backupResult(
      { cluster, backupId, source: src, steps },
      { dryRun: true, plan, pg: null, ebs: null, retention, drill: null, durationSeconds: seconds(startedMs, Date.now()) },
    );
  }

  // ---- EBS snapshots first: they complete in the background while the base backup copies ------
  let ebsMade: EbsSnapshotCreateResult | null = null;
  const ebsStarted = Date.now();
  if (kinds.includes('ebs')) {
    const src = source;
    ebsMade = await steps.run(
      'snapshot',
      () => calls.ebsSnapshotCreate({ cluster, backupId, node: src.node, workflowId, requestedBy }),
      (r) => r.detail,
    );
  }
  let pgMade: PgBackupCreateResult | null = null;
  const pgStarted = Date.now();
  if (kinds.includes('pg')) {
    const src = source;
    pgMade = await steps.run(
      'base-backup',
      () => copying.pgBackupCreate({ cluster, backupId, source: src.node, sourceRole: src.role }),
      (r) =>
        `${r.created ? 'made' : 'found (made by an earlier attempt)'} ${r.dir}: ${formatBytes(r.manifest.totalBytes)} in ${r.manifest.files.length} files, ` +
        `LSN ${r.manifest.startLsn} → ${r.manifest.endLsn} on timeline ${r.manifest.timeline}`,
    );
  }
  const pgSeconds = seconds(pgStarted, Date.now());
  // ---- offsite: the base backup copied to the store once its manifest is written ------------------
  let stored: PgBackupUploadResult | null = null;
  if (pgMade && cfg.store && patched(STORE_UPLOAD_PATCH)) {
    stored = await steps.run(
      'upload',
      () => copying.pgBackupUpload({ cluster, backupId }),
      (r) => r.detail,
    );
  }
  // ---- file sets (backup.files): kept with the base backup, so they need one --------------------
  const sets = cfg.files ?? [];
  let files: BackupFileSet[] | undefined;
  const fileFailures: string[] = [];
  if (pgMade && sets.length && patched(FILE_SETS_PATCH)) {
    files = [];
    for (const f of sets) {
      // A set whose host is down (its site lost, as in a failover) must not cost the database its backup:
      // the failure is kept, the rest goes on, and the run fails at its end naming the set.
      const made = await steps
        .run(
          `files:${f.set}`,
          () => fileSetCopying.fileSetBackup({ cluster, backupId, set: f.set }),
          (x) => x.detail,
        )
        .catch((err: unknown) => {
          fileFailures.push(`${f.set} (on ${f.host}): ${messageOf(err as Error)}`);
          return null;
        });
      if (made) files.push(made);
    }
  } else if (sets.length && !pgMade) {
    steps.note(
      'files',
      `file sets are kept with the base backup: this run makes none (no "pg" in kinds), so ${sets.map((f) => f.set).join(', ')} were not archived`,
      'skipped',
    );
  }
  let ebsWait: EbsSnapshotWaitResult | null = null;
  if (ebsMade) {
    ebsWait = await steps.run(
      'snapshot-wait',
      () => copying.ebsSnapshotWait({ cluster, backupId, timeoutSeconds: 6 * 3600 }),
      (r) => r.detail,
    );
    if (!ebsWait.completed)
      throw ApplicationFailure.nonRetryable(`the snapshots of backup ${backupId} did not complete: ${ebsWait.detail}`, 'SnapshotIncomplete');
  }
  const ebsSeconds = seconds(ebsStarted, Date.now());

  // ---- copies in other regions (backup.ebs.copyTo), started once the snapshots are completed ----
  const copyTo = cfg.ebs?.copyTo ?? [];
  let copies: BackupCopy[] | undefined;
  if (ebsMade && copyTo.length && patched(EBS_COPIES_PATCH)) {
    copies = await Promise.all(copyTo.map((t) => copyToRegion(steps, cluster, backupId, t.region)));
  }
  const copyFailure = (copies ?? [])
    .filter((c) => c.failure !== null)
    .map((c) => `${c.region}: ${c.failure}`)
    .join('; ');

  // ---- retention and drill ---------------------------------------------------------------------
  const retention = input.retention === false ? null : await applyRetention(steps, cluster, policy, false, [backupId]);
  let drill: DrillResult | null = null;
  let drillFailure: string | null = null;
  if (input.drill && pgMade) {
    drill = await steps
      .run(
        'drill',
        () => executeChild<typeof drillRun>('drill', { workflowId: `${workflowId}-drill`, args: [{ cluster, from: backupId, requestedBy }] }),
        (d) => d.detail,
      )
      .catch((err: unknown) => {
        drillFailure = messageOf(err as Error);
        return null;
      });
  } else if (input.drill) {
    steps.skip('drill', 'no base backup was made (kinds without "pg"): a drill restores base backups');
  }

  const pg: BackupResult['pg'] = pgMade
    ? {
        dir: pgMade.dir,
        totalBytes: pgMade.manifest.totalBytes,
        files: pgMade.manifest.files.map((f) => ({ name: f.name, bytes: f.bytes })),
        startLsn: pgMade.manifest.startLsn,
        endLsn: pgMade.manifest.endLsn,
        timeline: pgMade.manifest.timeline,
        pgVersion: pgMade.manifest.pgVersion,
        created: pgMade.created,
        durationSeconds: pgSeconds,
        ...(stored
          ? {
              store: {
                url: stored.url,
                uploaded: stored.uploaded,
                found: stored.found,
                bytesUploaded: stored.bytesUploaded,
                durationSeconds: Math.round(stored.durationMs / 100) / 10,
              },
            }
          : {}),
      }
    : null;
  const ebs: BackupResult['ebs'] = ebsMade
    ? {
        instanceId: ebsMade.instanceId,
        snapshots: (ebsWait?.snapshots ?? ebsMade.snapshots).map((s) => ({
          snapshotId: s.snapshotId,
          volumeId: s.volumeId,
          device: s.device,
          sizeGiB: s.sizeGiB,
          state: s.state,
        })),
        created: ebsMade.created,
        found: ebsMade.found,
        durationSeconds: ebsSeconds,
        apiRetries: ebsMade.api.retries + (ebsWait?.api.retries ?? 0),
      }
    : null;
  const durationSeconds = seconds(startedMs, Date.now());
  const made = [
    pg ? `base backup ${formatBytes(pg.totalBytes)} in ${pg.durationSeconds} s${stored ? `, copied to ${stored.url}` : ''}` : null,
    files?.length ? `file sets ${files.map((f) => `${f.set} (${f.files} files${f.encrypted ? ', encrypted' : ''})`).join(', ')}` : null,
    ebs ? `${ebs.snapshots.length} snapshots in ${ebs.durationSeconds} s${apiNote(ebs.apiRetries)}` : null,
    copies?.some((c) => c.completed)
      ? `copied to ${copies
          .filter((c) => c.completed)
          .map((c) => c.region)
          .join(', ')}`
      : null,
  ]
    .filter(Boolean)
    .join(', ');
  const drillText = drill ? `; drill proved it restores (RTO ${drill.rtoSeconds} s)` : drillFailure ? `; drill FAILED: ${drillFailure}` : '';
  const copyText = `${copyFailure ? `; copy FAILED (${copyFailure})` : ''}${fileFailures.length ? `; file set FAILED: ${fileFailures.join('; ')}` : ''}`;
  steps.note(
    'result',
    `backup ${backupId} of ${cluster} from ${source.node}: ${made}${retention ? `; retention deleted ${retention.deleted.length}` : ''}${copyText}${drillText}`,
    drillFailure || copyFailure || fileFailures.length ? 'failed' : 'done',
  );
  await notify(
    drillFailure ? 'backup.drill-failed' : copyFailure ? 'backup.copy-failed' : fileFailures.length ? 'backup.files-failed' : 'backup.completed',
    `backup ${backupId} of ${cluster}: ${made}${copyText}${drillText}`,
  );
  const result = backupResult({ cluster, backupId, source, steps }, { dryRun: false, plan: [], pg, ebs, retention, drill, copies, files, durationSeconds });
  if (fileFailures.length && !drillFailure && !copyFailure) {
    throw ApplicationFailure.create({
      message: `backup ${backupId} of ${cluster} was made, but archiving its file sets failed: ${fileFailures.join('; ')}`,
      type: 'FileSetFailed',
      nonRetryable: true,
      details: [result],
    });
  }
  if (copyFailure && !drillFailure) {
    throw ApplicationFailure.create({
      message: `backup ${backupId} of ${cluster} was made, but copying its snapshots failed: ${copyFailure}`,
      type: 'CopyFailed',
      nonRetryable: true,
      details: [result],
    });
  }
  if (drillFailure) {
    throw ApplicationFailure.create({
      message: `backup ${backupId} of ${cluster} was made, but its drill failed: ${drillFailure}${copyText}`,
      type: 'DrillFailed',
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

/**
 * Copy the backup's snapshots into one region and wait until the copies are completed. A failure
 * is returned (and the run fails at its end, after retention and drill), not thrown: the backup
 * itself is made, and the other regions' copies go on.
 */
async function copyToRegion(steps: StepLog, cluster: string, backupId: string, region: string): Promise<BackupCopy> {
  const started = Date.now();
  let made: EbsSnapshotCopyResult | null = null;
  let wait: EbsCopyWaitResult | null = null;
  let failure: string | null = null;
  try {
    made = await steps.run(
      `copy:${region}`,
      () => calls.ebsSnapshotCopy({ cluster, backupId, region }),
      (r) => r.detail,
    );
    wait = await steps.run(
      `copy-wait:${region}`,
      () => copying.ebsCopyWait({ cluster, backupId, region, timeoutSeconds: 6 * 3600 }),
      (r) => r.detail,
    );
    if (!wait.completed) failure = wait.detail;
  } catch (err) {
    failure = messageOf(err as Error);
  }
  const state = new Map((wait?.snapshots ?? []).map((s) => [s.snapshotId, s.state]));
  return {
    region,
    completed: failure === null,
    snapshots: (made?.copies ?? []).map((c) => ({ ...c, state: state.get(c.snapshotId) ?? c.state })),
    created: made?.created ?? [],
    found: made?.found ?? [],
    durationSeconds: seconds(started, Date.now()),
    failure,
  };
}

// ---- retention -----------------------------------------------------------------------------------

/** The topology's retention, overridden by the input's keepLast / maxAge (checked: a bad value is refused, nothing deleted). */
function policyOf(cfg: NonNullable<ClusterLayout['backup']>, input: { keepLast?: unknown; maxAge?: unknown }): NonNullable<ClusterLayout['backup']> {
  let keepLast = cfg.keepLast;
  let maxAgeSeconds = cfg.maxAgeSeconds;
  if (input.keepLast !== undefined) {
    if (typeof input.keepLast !== 'number' || !Number.isInteger(input.keepLast) || input.keepLast < 1)
      throw ApplicationFailure.nonRetryable(`"keepLast" must be an integer >= 1, got ${JSON.stringify(input.keepLast)}`, 'ConfigError');
    keepLast = input.keepLast;
  }
  if (input.maxAge !== undefined) {
    if (typeof input.maxAge !== 'string' || !DURATION_RE.test(input.maxAge))
      throw ApplicationFailure.nonRetryable(`"maxAge" must be a duration such as "36h" or "14d", got ${JSON.stringify(input.maxAge)}`, 'ConfigError');
    maxAgeSeconds = durationSeconds(input.maxAge);
  }
  return { ...cfg, keepLast, maxAgeSeconds };
}

async function applyRetention(
  steps: StepLog,
  cluster: string,
  cfg: NonNullable<ClusterLayout['backup']>,
  dryRun: boolean,
  protect: string[],
): Promise<RetentionOutcome> {
  const [pg, ebs] = await Promise.all([
    steps.run(
      'catalog:pg',
      () => calls.pgBackupList({ cluster }),
      (l) => `${l.length} base backups on ${cfg.host}`,
    ),
    cfg.kinds.includes('ebs')
      ? steps.run(
          'catalog:ebs',
          () => calls.ebsBackupsList({ cluster }),
          (l) => `${l.length} snapshot backups`,
        )
      : Promise.resolve([]),
  ]);
  const decisions = planRetention(catalog(pg, ebs), { keepLast: cfg.keepLast, maxAgeSeconds: cfg.maxAgeSeconds }, Date.now(), protect);
  const doomed = decisions.filter((d) => d.action === 'delete');
  steps.note(
    'retention',
    `keep ${decisions.length - doomed.length}, delete ${doomed.length} ` +
      `(keep the last ${cfg.keepLast} and anything younger than ${formatAge(cfg.maxAgeSeconds)}; never the newest proven-restorable): ` +
      (decisions.map((d) => `${d.backupId} ${d.action.toUpperCase()} (${d.why})`).join('; ') || 'no backups'),
  );
  const deleted: string[] = [];
  const failed: string[] = [];
  const skipped: string[] = [];
  for (const d of doomed) {
    if (dryRun) {
      const what = [d.pg ? 'the base backup' : null, d.snapshots.length ? `snapshots ${d.snapshots.join(', ')}` : null].filter(Boolean).join(' and ');
      steps.skip(`delete:${d.backupId}`, `dry run: would delete ${what} (${d.why})`);
      continue;
    }
    try {
      const parts: string[] = [];
      if (d.snapshots.length) {
        const r = await calls.ebsSnapshotsDelete({ cluster, backupId: d.backupId });
        parts.push(r.detail);
      }
      let busy = false;
      if (d.pg) {
        const r = await calls.pgBackupDelete({ cluster, backupId: d.backupId });
        parts.push(r.detail);
        busy = r.busy === true;
      }
      steps.note(`delete:${d.backupId}`, `${parts.join('; ')} (${d.why})`);
      if (busy) skipped.push(d.backupId);
      else deleted.push(d.backupId);
    } catch (err) {
      steps.note(`delete:${d.backupId}`, `could not delete: ${(err as Error).message}`, 'failed');
      failed.push(d.backupId);
    }
  }
  // The WAL archive keeps what the oldest base backup still kept needs to replay forward, and no more.
  if (cfg.archive && patched(WAL_PRUNE_PATCH)) {
    const gone = new Set(dryRun ? doomed.map((d) => d.backupId) : deleted);
    const keepFrom = oldestStart(pg.filter((b) => b.complete && b.manifest && !gone.has(b.backupId)));
    await steps
      .run(
        'prune:wal',
        () => archiveCalls.walArchivePrune({ cluster, keepFrom, ...(dryRun ? { dryRun: true } : {}) }),
        (r) => r.detail,
      )
      .catch(() => undefined); // noted as failed in the step log; the backups' retention stands
  }
  const copyTo = cfg.ebs?.copyTo ?? [];
  if (copyTo.length && patched(EBS_COPIES_PATCH)) {
    const copies: CopyRetentionOutcome[] = [];
    for (const t of copyTo) copies.push(await copyRetention(steps, cluster, t, dryRun, protect));
    return { dryRun, decisions, deleted, failed, skipped, copies };
  }
  return { dryRun, decisions, deleted, failed, skipped };
}

/**
 * Retention of one copy region's copies by that region's own keepLast and maxAge (planRetention,
 * as in the source region): only copies are deleted there, never anything in the source region.
 * The run's own backup is never deleted; a list that fails fails the run (nothing is deleted on a
 * catalog that could not be read).
 */
async function copyRetention(
  steps: StepLog,
  cluster: string,
  t: NonNullable<NonNullable<ClusterLayout['backup']>['ebs']>['copyTo'][number],
  dryRun: boolean,
  protect: string[],
): Promise<CopyRetentionOutcome> {
  const region = t.region;
  const list = await steps.run(
    `catalog:ebs:${region}`,
    () => calls.ebsBackupsList({ cluster, region }),
    (l) => `${l.length} snapshot backups copied to ${region}`,
  );
  const decisions = planRetention(catalog([], list), { keepLast: t.keepLast, maxAgeSeconds: t.maxAgeSeconds }, Date.now(), protect);
  const doomed = decisions.filter((d) => d.action === 'delete');
  steps.note(
    `retention:${region}`,
    `copies in ${region}: keep ${decisions.length - doomed.length}, delete ${doomed.length} ` +
      `(keep the last ${t.keepLast} and anything younger than ${formatAge(t.maxAgeSeconds)}): ` +
      (decisions.map((d) => `${d.backupId} ${d.action.toUpperCase()} (${d.why})`).join('; ') || 'no copies'),
  );
  const deleted: string[] = [];
  const failed: string[] = [];
  for (const d of doomed) {
    if (dryRun) {
      steps.skip(`delete:${region}:${d.backupId}`, `dry run: would delete copies ${d.snapshots.join(', ')} in ${region} (${d.why})`);
      continue;
    }
    try {
      const r = await calls.ebsSnapshotsDelete({ cluster, backupId: d.backupId, region });
      steps.note(`delete:${region}:${d.backupId}`, `${r.detail} (${d.why})`);
      deleted.push(d.backupId);
    } catch (err) {
      steps.note(`delete:${region}:${d.backupId}`, `could not delete: ${(err as Error).message}`, 'failed');
      failed.push(d.backupId);
    }
  }
  return { region, decisions, deleted, failed };
}

export interface BackupRetentionInput {
  cluster: string;
  requestedBy?: string;
  dryRun?: boolean;
  keepLast?: number;
  maxAge?: string;
}

export interface BackupRetentionResult extends RetentionOutcome {
  cluster: string;
  steps: StepRecord[];
}

export async function backupRetention(input: BackupRetentionInput): Promise<BackupRetentionResult> {
  const cluster = clusterOf('backupRetention', input);
  const steps = new StepLog('backup-retention', cluster);
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `keep the last ${l.backup?.keepLast ?? '?'}, maximum age ${l.backup ? formatAge(l.backup.maxAgeSeconds) : '?'}`,
  );
  const cfg = needBackupSection(layout);
  const r = await applyRetention(steps, cluster, policyOf(cfg, input), input.dryRun === true, []);
  return { cluster, ...r, steps: steps.snapshot() };
}

// ---- drill ----------------------------------------------------------------------------------------

export interface DrillInput {
  cluster: string;
  /** A backup id; default the newest complete base backup (with targetTime: the newest that finished before it). */
  from?: string;
  requestedBy?: string;
  /** Point in time (ISO): replay the WAL archive up to it, then count rows there. */
  targetTime?: string;
}

export interface DrillResult {
  cluster: string;
  backupId: string;
  ok: boolean;
  failure: string | null;
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rowCounts: Record<string, number>;
  detail: string;
  drill: PgDrillResult;
  /** A point-in-time drill: the point it reached (also in drill.reached). */
  reached?: PgDrillResult['reached'];
  steps: StepRecord[];
}

export async function drill(input: DrillInput): Promise<DrillResult> {
  const cluster = clusterOf('drill', input);
  const steps = new StepLog('drill', cluster);
  const { workflowId } = workflowInfo();
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `backup server ${l.backup?.host ?? 'none'}, scratch port ${l.backup?.drillPort ?? '?'}`,
  );
  needBackupSection(layout);
  const targetTime = input.targetTime === undefined ? undefined : checkTargetTime(input.targetTime);
  let backupId = typeof input.from === 'string' && input.from ? input.from : null;
  if (!backupId) {
    const list = await steps.run(
      'catalog:pg',
      () => calls.pgBackupList({ cluster }),
      (l) => `${l.filter((b) => b.complete).length} complete base backups`,
    );
    const target = targetTime === undefined ? null : Date.parse(targetTime);
    const newest = list
      .filter((b) => b.complete && b.manifest && (target === null || Date.parse(b.manifest.finishedAt) <= target))
      .sort((a, b) => Date.parse(b.manifest!.startedAt) - Date.parse(a.manifest!.startedAt))[0];
    if (!newest)
      throw ApplicationFailure.nonRetryable(
        target === null
          ? `cluster ${cluster} has no complete base backup to drill: run \`switchyard backup ${cluster}\` first`
          : `cluster ${cluster} has no complete base backup that finished before ${targetTime}: a point-in-time restore replays forward from one`,
        'BackupNotFound',
      );
    backupId = newest.backupId;
    steps.note(
      'choose',
      target === null
        ? `the newest base backup: ${backupId} (${newest.manifest!.startedAt})`
        : `the newest base backup finished before ${targetTime}: ${backupId} (finished ${newest.manifest!.finishedAt})`,
    );
  }
  const id = backupId;
  const d = await steps.run(
    'restore-scratch',
    () => copying.pgDrill({ cluster, backupId: id, workflowId, ...(targetTime !== undefined ? { targetTime } : {}) }),
    (r) => r.detail,
  );
  const rec = d.record;
  const restored =
    d.ok && rec
      ? `backup ${id} restores: ready in ${rec.rtoSeconds} s (RTO), ${formatAge(rec.rpoSeconds)} old when proven (RPO); ${
          Object.entries(rec.rowCounts)
            .map(([t, n]) => `${t}: ${n} rows`)
            .join(', ') || 'no user tables'
        }`
      : `backup ${id} did NOT restore: ${d.failure ?? d.detail}`;
  const point = d.reached
    ? `; replayed to ${d.reached.targetTime} (last transaction committed ${d.reached.lastReplayAt ?? 'before the backup'}, LSN ${d.reached.lsn}, timeline ${d.reached.timeline})`
    : '';
  const detail = `${restored}${point}`;
  steps.note('result', detail, d.ok ? 'done' : 'failed');
  const result: DrillResult = {
    cluster,
    backupId: id,
    ok: d.ok,
    failure: d.failure,
    rtoSeconds: rec?.rtoSeconds ?? null,
    rpoSeconds: rec?.rpoSeconds ?? null,
    rowCounts: rec?.rowCounts ?? {},
    detail,
    drill: d,
    ...(d.reached ? { reached: d.reached } : {}),
    steps: steps.snapshot(),
  };
  const notify = notifyVia(layout.notify, cluster, workflowId);
  await notify(d.ok ? 'drill.passed' : 'drill.failed', detail);
  // A backup that does not restore is a failed run, visible as such in the UI and to `--wait`.
  if (!d.ok) throw ApplicationFailure.create({ message: detail, type: 'DrillFailed', nonRetryable: true, details: [result] });
  return result;
}

const drillRun = drill;
