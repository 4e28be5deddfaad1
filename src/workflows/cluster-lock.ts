/**
 * The per-cluster operation lock (DESIGN.md section 2): failover, switchover, failback, rejoin and
 * restore of one cluster are exclusive whatever workflow id a person typed, because each run takes
 * the lock itself from this workflow (one per cluster, id `switchyard-lock-<cluster>`), through
 * the lockAcquire activity's Update-With-Start.
 *
 * The lock holds at most one holder, named by workflow id AND run id: a retried acquire by the same
 * run is granted again (idempotent after a worker crash); anyone else is refused with the holder.
 * Only the holder releases; `forceRelease` is for a holder found closed (terminated, timed out) and
 * is a compare-and-swap, so it never drops a holder that was granted in between. The workflow
 * continues as new when its history grows, carrying the holder, and ends itself when it has been
 * free and idle for a while; the next acquire starts it again.
 */
import { allHandlersFinished, condition, continueAsNew, defineQuery, defineUpdate, log, setHandler, workflowInfo } from '@temporalio/workflow';

export interface LockHolder {
  workflowId: string;
  runId: string;
  operation: string;
  requestedBy?: string;
  /** ISO time (lock workflow clock) the lock was granted. */
  since: string;
}

export interface AcquireRequest {
  workflowId: string;
  runId: string;
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

function sameRun(h: LockHolder | null, r: ReleaseRequest): boolean {
  return h !== null && h.workflowId === r.workflowId && h.runId === r.runId;
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
      holder = { workflowId: req.workflowId, runId: req.runId, operation: req.operation, ...(req.requestedBy ? { requestedBy: req.requestedBy } : {}), since: new Date().toISOString() };
      log.info(`cluster ${cluster} locked for ${req.operation} by ${req.workflowId}`, { cluster, ...req });
      return { granted: true, holder: { ...holder } };
    }
    if (sameRun(holder, req)) return { granted: true, holder: { ...holder } };
    return { granted: false, holder: { ...holder } };
  });
  setHandler(releaseUpdate, (req): ReleaseResult => {
    requests++;
    if (!sameRun(holder, req)) return { released: false, holder: holder ? { ...holder } : null };
    log.info(`cluster ${cluster} released by ${req.workflowId}`, { cluster, ...req });
    holder = null;
    return { released: true, holder: null };
  });
  setHandler(forceReleaseUpdate, (req): ReleaseResult => {
    requests++;
    if (!sameRun(holder, req)) return { released: false, holder: holder ? { ...holder } : null };
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
