/**
 * Metrics of every runbook run, in one place (bundled as a workflow interceptor module by
 * src/workflow-bundle.ts): each run's end (operation, cluster, outcome, duration, and a failover's
 * RTO and data lost, a switchover's write downtime, a drill's RTO), and what some activities
 * return (a base backup's manifest, a drill's record, the backup server's listing, the standbys'
 * lag). It only reads inputs and results and issues no command, so it changes no history.
 */
import { CancelledFailure, isCancellation, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import type { PgBackupCreateResult, PgBackupEntry, PgDrillResult } from '../../contract/backup';
import type { PgLag } from '../../contract/observations';
import { backupObservation, type WatchObservations } from '../../contract/readiness';
import type { ClusterLayout } from '../../topology/layout';
import {
  OPERATIONS,
  recordBackupCatalog,
  recordBackupMade,
  recordDrill,
  recordEbsBackup,
  recordFailover,
  recordLags,
  recordRun,
  recordSwitchoverDowntime,
} from './metrics';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null;
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The outcome label of a run that returned. */
function outcomeOf(type: string, r: Obj): string {
  if (typeof r.outcome === 'string') return r.outcome;
  if (type === 'drill') return r.ok === true ? 'completed' : 'failed';
  if (type === 'readiness') return r.ready === true ? 'ready' : 'not-ready';
  if (r.dryRun === true) return 'planned';
  return 'completed';
}

function recordResult(type: string, cluster: string, r: Obj): void {
  if (type === 'failover' && r.outcome === 'completed' && isObj(r.rto))
    recordFailover(cluster, {
      fromDecisionSeconds: num(r.rto.fromDecisionSeconds),
      fromStartSeconds: num(r.rto.fromStartSeconds),
      dataLostBytes: num(r.dataLostBytes),
    });
  if (type === 'switchover' && r.outcome === 'completed' && num(r.writeDowntimeMs) !== null) recordSwitchoverDowntime(cluster, num(r.writeDowntimeMs)!);
  if (type === 'backup' && r.dryRun !== true && isObj(r.ebs) && num(r.ebs.durationSeconds) !== null) recordEbsBackup(cluster, num(r.ebs.durationSeconds)!);
}

function clusterOf(args: unknown[]): string | null {
  const a = args[0];
  return isObj(a) && typeof a.cluster === 'string' ? a.cluster : null;
}

export const interceptors: WorkflowInterceptorsFactory = () => {
  // The sites of the cluster's nodes, from the run's own layout read (the lag labels).
  const sites = new Map<string, string>();
  const seen = (activity: string, input: unknown, result: unknown): void => {
    if (!isObj(input) || typeof input.cluster !== 'string') return;
    const cluster = input.cluster;
    try {
      if (activity === 'clusterLayout' && isObj(result)) for (const n of (result as unknown as ClusterLayout).nodes ?? []) sites.set(n.name, n.site);
      else if (activity === 'pgBackupCreate') {
        const r = result as PgBackupCreateResult;
        recordBackupMade(cluster, r.manifest, r.created ? r.durationMs / 1000 : null);
      } else if (activity === 'pgDrill') {
        const r = result as PgDrillResult;
        recordDrill(cluster, r.ok, r.record);
      } else if (activity === 'pgBackupList') recordBackupCatalog(cluster, backupObservation(result as PgBackupEntry[]));
      else if (activity === 'pgLag') recordLags(cluster, [result as PgLag], (n) => sites.get(n));
      else if (activity === 'watchObserve') {
        const r = result as WatchObservations;
        recordLags(cluster, r.lags ?? [], (n) => sites.get(n));
        if (r.full !== false) recordBackupCatalog(cluster, r.backups ?? null);
      }
    } catch {
      // A result of another shape (an older activity): no metric, never a failed workflow task.
    }
  };
  return {
    inbound: [
      {
        async execute(input, next) {
          const { workflowType, runStartTime } = workflowInfo();
          const operation = OPERATIONS[workflowType as keyof typeof OPERATIONS];
          const cluster = clusterOf(input.args);
          if (!operation || !cluster) return next(input);
          const seconds = () => (Date.now() - runStartTime.getTime()) / 1000;
          let result: unknown;
          try {
            result = await next(input);
          } catch (err) {
            recordRun(operation, cluster, isCancellation(err) || err instanceof CancelledFailure ? 'cancelled' : 'failed', seconds());
            throw err;
          }
          if (isObj(result)) {
            try {
              recordResult(workflowType, cluster, result);
              recordRun(operation, cluster, outcomeOf(workflowType, result), seconds());
            } catch {
              // never fail a run for its metrics
            }
          }
          return result;
        },
      },
    ],
    outbound: [
      {
        async scheduleActivity(input, next) {
          const result = await next(input);
          seen(input.activityType, input.args[0], result);
          return result;
        },
        async scheduleLocalActivity(input, next) {
          const result = await next(input);
          seen(input.activityType, input.args[0], result);
          return result;
        },
      },
    ],
  };
};
