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
import { allHandlersFinished, condition, continueAsNew, log, setHandler, workflowInfo } from '@temporalio/workflow';
import {
  acquireUpdate,
  forceReleaseUpdate,
  holderQuery,
  releaseUpdate,
  sameHolder,
  type AcquireResult,
  type ClusterLockInput,
  type LockHolder,
  type ReleaseResult,
} from '../contract/cluster-lock';

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
