/**
 * switchyard's Prometheus metrics: one catalog for the code that records them (the workflow
 * metrics interceptor, checkpoints, the watch, the worker's topology gauges), the worker's
 * histogram buckets, the alert rules in deploy/prometheus and the README's list.
 *
 * Names follow Prometheus conventions: the unit is in the name (seconds, bytes), counters are
 * exposed with `_total` (the SDK's exporter appends it: `name` here is without it, `exposed` with),
 * and labels come from bounded sets only (cluster, site, operation, outcome, checkpoint, decision,
 * kind). Metrics recorded from workflow code also carry the SDK's namespace, task_queue and
 * workflow_type labels; the alert rules aggregate them away with `max by (cluster)` and the like.
 * Plain data: workflow code imports it.
 */
export type MetricKind = 'counter' | 'histogram' | 'gauge';

export interface MetricDef {
  /** The name given to the meter (for counters: without `_total`). */
  name: string;
  /** The name a scrape shows (for histograms, the family: `_bucket`, `_sum`, `_count` follow). */
  exposed: string;
  kind: MetricKind;
  help: string;
  labels: readonly string[];
  /** Histogram bucket bounds (the SDK's default, 0.05 s to 10 s, fits none of ours). */
  buckets?: readonly number[];
}

/** Seconds a run or a step may take: a second to a day. */
const DURATION_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400] as const;
/** Seconds of an outage or of write downtime: 100 ms to an hour. */
const OUTAGE_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600] as const;
/** Bytes of data lost at a failover: none to a gibibyte. */
const BYTES_BUCKETS = [0, 1, 1024, 16384, 65536, 1048576, 16777216, 134217728, 1073741824] as const;

function def(kind: MetricKind, name: string, labels: readonly string[], help: string, buckets?: readonly number[]): MetricDef {
  return { name, exposed: kind === 'counter' ? `${name}_total` : name, kind, help, labels, ...(buckets ? { buckets } : {}) };
}

export const METRICS = {
  runs: def(
    'counter',
    'switchyard_runs',
    ['operation', 'cluster', 'outcome'],
    'Runs that ended, by runbook and outcome (completed, aborted, planned, already, failed, cancelled, ...).',
  ),
  runDuration: def(
    'histogram',
    'switchyard_run_duration_seconds',
    ['operation', 'cluster', 'outcome'],
    'How long a run took from its start to its end (checkpoint waits included).',
    DURATION_BUCKETS,
  ),
  checkpointWait: def(
    'histogram',
    'switchyard_checkpoint_wait_seconds',
    ['operation', 'cluster', 'checkpoint', 'decision'],
    'How long a run waited at a checkpoint until it was decided (approved, rejected, timed-out, withdrawn).',
    DURATION_BUCKETS,
  ),
  checkpointOverdue: def(
    'gauge',
    'switchyard_checkpoint_overdue',
    ['operation', 'cluster', 'checkpoint'],
    '1 while a run waits at a checkpoint past its reminder, 0 once it was decided.',
  ),
  failoverDecisionToTraffic: def(
    'histogram',
    'switchyard_failover_decision_to_traffic_seconds',
    ['cluster'],
    "A completed failover's RTO from the decision (approval, or the start when none was needed) to traffic at the new primary.",
    OUTAGE_BUCKETS,
  ),
  failoverDuration: def(
    'histogram',
    'switchyard_failover_duration_seconds',
    ['cluster'],
    "A completed failover's RTO from its start to traffic at the new primary.",
    OUTAGE_BUCKETS,
  ),
  failoverDataLost: def(
    'histogram',
    'switchyard_failover_data_lost_bytes',
    ['cluster'],
    'WAL bytes the old primary had that the promoted node did not (0: nothing lost).',
    BYTES_BUCKETS,
  ),
  failoverLast: def('gauge', 'switchyard_failover_last_timestamp_seconds', ['cluster'], 'When the last completed failover ended (Unix time).'),
  switchoverWriteDowntime: def(
    'histogram',
    'switchyard_switchover_write_downtime_seconds',
    ['cluster'],
    'How long a completed switchover refused writes.',
    OUTAGE_BUCKETS,
  ),
  backupDuration: def(
    'histogram',
    'switchyard_backup_duration_seconds',
    ['cluster', 'kind'],
    'How long making a backup took, by kind (pg: base backup, ebs: snapshots).',
    DURATION_BUCKETS,
  ),
  backupSize: def('gauge', 'switchyard_backup_last_size_bytes', ['cluster'], 'Size of the newest complete base backup.'),
  backupLastSuccess: def(
    'gauge',
    'switchyard_backup_last_success_timestamp_seconds',
    ['cluster'],
    'When the newest complete base backup finished (Unix time, from its manifest).',
  ),
  backupLastRestorable: def(
    'gauge',
    'switchyard_backup_last_restorable_timestamp_seconds',
    ['cluster'],
    'When the newest backup a drill proved restorable was made (Unix time, from its manifest); 0: none is proven.',
  ),
  backupMaxRestorableAge: def(
    'gauge',
    'switchyard_backup_max_restorable_age_seconds',
    ['cluster'],
    "The topology's backup.maxRestorableAge (absent: no maximum set).",
  ),
  drillRto: def(
    'histogram',
    'switchyard_drill_rto_seconds',
    ['cluster'],
    'A successful drill: from the start of the restore to a server answering queries.',
    OUTAGE_BUCKETS,
  ),
  drillRpo: def('gauge', 'switchyard_drill_rpo_seconds', ['cluster'], "The last successful drill: the proven backup's age when it was proven."),
  drills: def('counter', 'switchyard_drills', ['cluster', 'outcome'], 'Drills that ended, by outcome (ok, failed).'),
  replicationLagBytes: def(
    'gauge',
    'switchyard_replication_lag_bytes',
    ['cluster', 'site'],
    "A standby's replay lag behind the primary, in WAL bytes (readiness and watch reads).",
  ),
  replicationLagSeconds: def(
    'gauge',
    'switchyard_replication_lag_seconds',
    ['cluster', 'site'],
    "A standby's replay lag behind the primary, in seconds (readiness and watch reads).",
  ),
  replicationMaxLagBytes: def(
    'gauge',
    'switchyard_replication_max_lag_bytes',
    ['cluster'],
    "The topology's postgres.maxLagBytes: a standby further behind is not ready.",
  ),
  fenceOnReturn: def(
    'counter',
    'switchyard_fence_on_return',
    ['cluster', 'site'],
    'A former primary answered again after another node took over (a fence-on-return event).',
  ),
  watchLastReport: def('gauge', 'switchyard_watch_last_report_timestamp_seconds', ['cluster'], "When the cluster's watch last finished a probe (Unix time)."),
} as const satisfies Record<string, MetricDef>;

export type MetricId = keyof typeof METRICS;
