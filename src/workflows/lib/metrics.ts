/**
 * Recording switchyard's metrics (src/contract/metrics.ts) from workflow code, through the
 * workflow metric meter: the SDK drops what is recorded while a history replays, so a worker that
 * picks a run up again does not count it twice. Recording issues no command: adding or moving a
 * call here never changes what a history replays.
 */
import { metricMeter } from '@temporalio/workflow';
import { METRICS, type MetricDef } from '../../contract/metrics';
import type { PgLag } from '../../contract/observations';
import type { BackupObservation } from '../../contract/readiness';

type Tags = Record<string, string>;

/** The runbooks counted, by workflow type → operation label. The lock, guard and watch are not runs a person asked for. */
export const OPERATIONS = {
  failover: 'failover',
  switchover: 'switchover',
  failback: 'failback',
  rejoin: 'rejoin',
  backup: 'backup',
  backupRetention: 'retention',
  drill: 'drill',
  restore: 'restore',
  readiness: 'readiness',
} as const;

/** The operation label of a workflow type (its own name when it is not a runbook). */
export function operationOf(workflowType: string): string {
  return OPERATIONS[workflowType as keyof typeof OPERATIONS] ?? workflowType;
}

function counter(m: MetricDef, tags: Tags, value = 1): void {
  metricMeter.createCounter(m.name, undefined, m.help).add(value, tags);
}
function histogram(m: MetricDef, value: number, tags: Tags): void {
  if (Number.isFinite(value) && value >= 0) metricMeter.createHistogram(m.name, 'float', undefined, m.help).record(value, tags);
}
function gauge(m: MetricDef, value: number, tags: Tags): void {
  if (Number.isFinite(value)) metricMeter.createGauge(m.name, 'float', undefined, m.help).set(value, tags);
}
const unixSeconds = (iso: string | null | undefined): number | null => {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(ms) ? ms / 1000 : null;
};

export function recordRun(operation: string, cluster: string, outcome: string, seconds: number): void {
  counter(METRICS.runs, { operation, cluster, outcome });
  histogram(METRICS.runDuration, seconds, { operation, cluster, outcome });
}

export function recordFailover(
  cluster: string,
  r: { fromDecisionSeconds: number | null; fromStartSeconds: number | null; dataLostBytes: number | null },
): void {
  if (r.fromDecisionSeconds !== null) histogram(METRICS.failoverDecisionToTraffic, r.fromDecisionSeconds, { cluster });
  if (r.fromStartSeconds !== null) histogram(METRICS.failoverDuration, r.fromStartSeconds, { cluster });
  if (r.dataLostBytes !== null) histogram(METRICS.failoverDataLost, r.dataLostBytes, { cluster });
  gauge(METRICS.failoverLast, Date.now() / 1000, { cluster });
}

export function recordSwitchoverDowntime(cluster: string, ms: number): void {
  histogram(METRICS.switchoverWriteDowntime, ms / 1000, { cluster });
}

/** A complete base backup (made now, or found complete by a resumed run): its manifest's time and size. */
export function recordBackupMade(cluster: string, m: { finishedAt: string; totalBytes: number }, durationSeconds: number | null): void {
  const at = unixSeconds(m.finishedAt);
  if (at !== null) gauge(METRICS.backupLastSuccess, at, { cluster });
  gauge(METRICS.backupSize, m.totalBytes, { cluster });
  if (durationSeconds !== null) histogram(METRICS.backupDuration, durationSeconds, { cluster, kind: 'pg' });
}

export function recordEbsBackup(cluster: string, durationSeconds: number): void {
  histogram(METRICS.backupDuration, durationSeconds, { cluster, kind: 'ebs' });
}

/**
 * A drill ended: a success proves its backup restorable, made `rpoSeconds` before `provenAt`
 * (the newest proven one, unless an older backup was drilled: the next listing corrects that).
 */
export function recordDrill(cluster: string, ok: boolean, rec: { rtoSeconds: number; rpoSeconds: number; provenAt: string } | null): void {
  counter(METRICS.drills, { cluster, outcome: ok ? 'ok' : 'failed' });
  if (!ok || !rec) return;
  histogram(METRICS.drillRto, rec.rtoSeconds, { cluster });
  gauge(METRICS.drillRpo, rec.rpoSeconds, { cluster });
  const proven = unixSeconds(rec.provenAt);
  if (proven !== null) gauge(METRICS.backupLastRestorable, Math.round((proven - rec.rpoSeconds) * 1000) / 1000, { cluster });
}

/**
 * What the backup server holds, as read by a listing or the watch: the newest proven-restorable
 * backup's time (0 when none is proven) and, when known, the newest complete one's. A listing
 * that failed says nothing (the last values stand; the watch-not-reporting and age alerts cover it).
 */
export function recordBackupCatalog(cluster: string, obs: BackupObservation | null): void {
  if (!obs || obs.error !== null) return;
  const proven = obs.newestProven ? unixSeconds(obs.newestProven.finishedAt ?? obs.newestProven.provenAt) : 0;
  if (proven !== null) gauge(METRICS.backupLastRestorable, proven, { cluster });
  if (obs.newestComplete) recordBackupMade(cluster, obs.newestComplete, null);
}

/** Each standby's lag, labelled by its site (`siteOf`: node → site; unknown nodes are left out). */
export function recordLags(cluster: string, lags: readonly PgLag[], siteOf: (node: string) => string | undefined): void {
  for (const l of lags) {
    const site = siteOf(l.standby);
    if (!site) continue;
    if (l.lagBytes !== null) gauge(METRICS.replicationLagBytes, l.lagBytes, { cluster, site });
    if (l.lagSeconds !== null) gauge(METRICS.replicationLagSeconds, l.lagSeconds, { cluster, site });
  }
}

export function recordWatchReport(cluster: string): void {
  gauge(METRICS.watchLastReport, Date.now() / 1000, { cluster });
}

export function recordFenceOnReturn(cluster: string, site: string): void {
  counter(METRICS.fenceOnReturn, { cluster, site });
}

export function recordCheckpointWait(operation: string, cluster: string, checkpoint: string, decision: string, seconds: number): void {
  histogram(METRICS.checkpointWait, seconds, { operation, cluster, checkpoint, decision });
  gauge(METRICS.checkpointOverdue, 0, { operation, cluster, checkpoint });
}

export function recordCheckpointOverdue(operation: string, cluster: string, checkpoint: string): void {
  gauge(METRICS.checkpointOverdue, 1, { operation, cluster, checkpoint });
}
