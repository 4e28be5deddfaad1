/**
 * The per-cluster operation lock (DESIGN.md section 2): failover, switchover, failback, rejoin and
 * restore of one cluster are exclusive whatever workflow id a person typed, because each run takes
 * the lock itself from this workflow (one per cluster, id `switchyard-lock-<cluster>`), through
 * the lockAcquire activity's Update-With-Start.
 *
 * The lock holds at most one holder, named by workflow id AND the first run id of its execution
 * chain (`workflowInfo().firstExecutionRunId`, which a `temporal workflow reset` and a
 * continue-as-new keep): a retried acquire by the same run, or an acquire or release by a reset
 * run of it, matches the holder (idempotent after a worker crash, a reset is still the holder);
 * anyone else is refused with the holder. A holder recorded before that field existed (carried
 * over continue-as-new) is matched by its run id, or by a request whose chain began with that run.
 * Only the holder releases; `forceRelease` is for a holder whose chain is no longer running
 * (terminated, timed out, and no reset run of it) and is a compare-and-swap, so it never drops a
 * holder that was granted in between. The workflow continues as new when its history grows,
 * carrying the holder, and ends itself when it has been free and idle for a while; the next
 * acquire starts it again (carrying the holder of a run that was terminated while held, when that
 * holder still runs: src/activities/lock.ts).
 */
import { allHandlersFinished, condition, continueAsNew, defineQuery, defineUpdate, log, setHandler, workflowInfo } from '@temporalio/workflow';

export interface LockHolder {
  workflowId: string;
  /** The run that took the lock (or that took it again: a reset run of it). */
  runId: string;
  /** The first run of the holder's execution chain; absent on holders recorded before it existed. */
  firstExecutionRunId?: string;
  operation: string;
  requestedBy?: string;
  /** ISO time (lock workflow clock) the lock was granted. */
  since: string;
}

export interface AcquireRequest {
  workflowId: string;
  runId: string;
  /** workflowInfo().firstExecutionRunId of the requesting run. */
  firstExecutionRunId?: string;
  operation: string;
  requestedBy?: string;
}

export interface AcquireResult {
  granted: boolean;
  /** The holder after the request: the requester when granted, the one in the way when refused. */
  holder: LockHolder | null;
}

export interface ReleaseRequest {
  workflowId: string;
  runId: string;
  /** workflowInfo().firstExecutionRunId of the releasing run (for forceRelease: of the stale holder). */
  firstExecutionRunId?: string;
}

export interface ForceReleaseRequest extends ReleaseRequest {
  /** Why, for the log: e.g. "holder is TERMINATED". */
  reason: string;
}

export interface ReleaseResult {
  released: boolean;
  /** The holder after the request. */
  holder: LockHolder | null;
}

export interface ClusterLockInput {
  cluster: string;
  /** Carried over continue-as-new. */
  holder?: LockHolder | null;
  /** End the workflow after this long free with no requests. Default 600. */
  idleSeconds?: number;
  /** Continue as new after this many requests in one run (or when the server suggests it). Default 500. */
  maxRequestsPerRun?: number;
}

export const acquireUpdate = defineUpdate<AcquireResult, [AcquireRequest]>('acquire');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const forceReleaseUpdate = defineUpdate<ReleaseResult, [ForceReleaseRequest]>('forceRelease');
export const holderQuery = defineQuery<LockHolder | null>('holder');

export function lockWorkflowId(cluster: string): string {
  return `switchyard-lock-${cluster}`;
}

/** The first run of an execution chain: recorded, else (a holder or request from before) its run. */
export function chainOf(x: { runId: string; firstExecutionRunId?: string }): string {
  return x.firstExecutionRunId || x.runId;
}

/** The same holder: the same workflow id and the same run, or the same execution chain (a reset run). */
export function sameHolder(h: LockHolder | null, r: ReleaseRequest): boolean {
  return h !== null && h.workflowId === r.workflowId && (h.runId === r.runId || chainOf(h) === chainOf(r));
}

export async function clusterLock(input: ClusterLockInput): Promise<void> {
  const { cluster } = input;
  const idleMs = (input.idleSeconds ?? 600) * 1000;
  const maxRequests = input.maxRequestsPerRun ?? 500;
  let holder: LockHolder | null = input.holder ?? null;
  let requests = 0;

  setHandler(holderQuery, () => (holder ? { ...holder } : null));
  setHandler(acquireUpdate, (req): AcquireResult => {
    requests++;
    if (holder === null) {
      holder = {
        workflowId: req.workflowId,
        runId: req.runId,
        ...(req.firstExecutionRunId ? { firstExecutionRunId: req.firstExecutionRunId } : {}),
        operation: req.operation,
        ...(req.requestedBy ? { requestedBy: req.requestedBy } : {}),
        since: new Date().toISOString(),
      };
      log.info(`cluster ${cluster} locked for ${req.operation} by ${req.workflowId}`, { cluster, ...req });
      return { granted: true, holder: { ...holder } };
    }
    if (sameHolder(holder, req)) {
      if (holder.runId !== req.runId) {
        // A reset run of the holder: still the holder; named by its live run from now on.
        log.info(`cluster ${cluster} still locked by ${req.workflowId}, now its run ${req.runId}`, { cluster, ...req });
        holder = { ...holder, runId: req.runId, ...(req.firstExecutionRunId ? { firstExecutionRunId: req.firstExecutionRunId } : {}) };
      }
      return { granted: true, holder: { ...holder } };
    }
    return { granted: false, holder: { ...holder } };
  });
  setHandler(releaseUpdate, (req): ReleaseResult => {
    requests++;
    if (!sameHolder(holder, req)) return { released: false, holder: holder ? { ...holder } : null };
    log.info(`cluster ${cluster} released by ${req.workflowId}`, { cluster, ...req });
    holder = null;
    return { released: true, holder: null };
  });
  setHandler(forceReleaseUpdate, (req): ReleaseResult => {
    requests++;
    if (!sameHolder(holder, req)) return { released: false, holder: holder ? { ...holder } : null };
    log.warn(`cluster ${cluster} force-released from ${req.workflowId}: ${req.reason}`, { cluster, ...req });
    holder = null;
    return { released: true, holder: null };
  });

  for (;;) {
    const seen = requests;
    const rotate = () => requests >= maxRequests || workflowInfo().continueAsNewSuggested;
    // Held: wait as long as it takes (the holder releases, or a later acquirer finds it closed).
    // Free: wait for a request, or end when idle so the lock does not live forever.
    const woke = holder === null ? await condition(() => requests !== seen || rotate(), idleMs) : (await condition(() => requests !== seen || rotate()), true);
    if (rotate()) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof clusterLock>({ ...input, holder });
    }
    if (!woke && holder === null && allHandlersFinished()) {
      // An update arriving now is not lost: the server refuses this completion while an update is
      // undelivered, and the replayed task sees the request first.
      log.info(`cluster ${cluster} lock idle; ending`, { cluster });
      return;
    }
  }
}
