/**
 * withClusterLock: how a mutating runbook (failover, switchover, failback, rejoin, restore) holds
 * its cluster's lock. The run takes the lock itself, as the step `lock`, so the lock holds
 * whatever workflow id a person typed; the step `unlock` always runs afterwards, in a
 * non-cancellable scope so a cancelled run still releases. If the release itself cannot be done,
 * the lock is left to the next acquirer, which force-releases a holder it finds closed.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { StepLog } from './steps';

const lockActs = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10, nonRetryableErrorTypes: ['ClusterBusy', 'ConfigError'] },
});

function isBusy(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'ClusterBusy';
}

export async function withClusterLock<T>(
  cluster: string,
  operation: string,
  requestedBy: string | undefined,
  steps: StepLog,
  fn: () => Promise<T>,
  opts: { underParentLock?: boolean } = {},
): Promise<T> {
  const { workflowId, runId, parent } = workflowInfo();
  if (opts.underParentLock) {
    // A child of a runbook that holds the lock (failback's rejoin and switchover) runs under it.
    // Only a child can claim that: a run started by a person always takes the lock itself.
    if (!parent) throw ApplicationFailure.nonRetryable(`"underParentLock" is only for child runs of a runbook that holds the lock of ${cluster}`, 'ConfigError');
    steps.note('lock', `cluster ${cluster} is locked by the parent run ${parent.workflowId}`);
    return fn();
  }
  let busy = false;
  try {
    await steps.run(
      'lock',
      () => lockActs.lockAcquire({ cluster, workflowId, runId, operation, ...(requestedBy ? { requestedBy } : {}) }),
      (r) => `cluster ${cluster} locked for ${operation}${r.forceReleased ? `; released the stale lock of ${r.forceReleased.operation} ${r.forceReleased.workflowId}` : ''}`,
    ).catch((err: unknown) => {
      busy = isBusy(err);
      throw err;
    });
    return await fn();
  } finally {
    // Also after a failed or cancelled acquire (it may have been granted before the failure);
    // release is a no-op for a run that does not hold the lock. Not after a refusal: nothing to do.
    if (!busy) {
      await CancellationScope.nonCancellable(() =>
        steps.run('unlock', () => lockActs.lockRelease({ cluster, workflowId, runId }), (r) => (r.released ? `cluster ${cluster} released` : 'was not held')),
      ).catch(() => undefined); // recorded as failed in the step log; never hides fn's own outcome
    }
  }
}
