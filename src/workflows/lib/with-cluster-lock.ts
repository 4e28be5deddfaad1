/**
 * withClusterLock: how a mutating runbook (failover, switchover, failback, rejoin, restore) holds
 * its cluster's lock. The run takes the lock itself, as the step `lock`, so the lock holds
 * whatever workflow id a person typed; the step `unlock` always runs afterwards, in a
 * non-cancellable scope so a cancelled run still releases. If the release itself cannot be done,
 * the lock is left to the next acquirer, which force-releases a holder whose run has ended.
 *
 * The run is named by its workflow id and firstExecutionRunId (kept by `temporal workflow reset`
 * and continue-as-new), so a reset run still holds the lock it took and its unlock releases it.
 * A child run under its parent's lock (patch 'lock-verify-parent') has the lock workflow's holder
 * checked against its parent (or an ancestor) before it does anything; before that patch a child
 * only checked that it had a parent.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { LOCK } from './activity-options';
import type { StepLog } from './steps';

const lockActs = proxyActivities<Activities>(LOCK);

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
  const { workflowId, runId, firstExecutionRunId, parent } = workflowInfo();
  if (opts.underParentLock) {
    // A child of a runbook that holds the lock (failback's rejoin and switchover) runs under it.
    // Only a child can claim that: a run started by a person always takes the lock itself.
    if (!parent)
      throw ApplicationFailure.nonRetryable(`"underParentLock" is only for child runs of a runbook that holds the lock of ${cluster}`, 'ConfigError');
    if (patched('lock-verify-parent')) {
      // The parent must really hold it (refused, naming the holder, when it does not).
      await steps.run(
        'lock',
        () => lockActs.lockCheckParent({ cluster, workflowId, operation, parent: { workflowId: parent.workflowId, runId: parent.runId } }),
        (r) => `cluster ${cluster} is locked by ${r.heldBy === parent.workflowId ? 'the parent run' : 'an ancestor run'} ${r.heldBy} (${r.holder.operation})`,
      );
    } else {
      steps.note('lock', `cluster ${cluster} is locked by the parent run ${parent.workflowId}`);
    }
    return fn();
  }
  let busy = false;
  try {
    await steps
      .run(
        'lock',
        () => lockActs.lockAcquire({ cluster, workflowId, runId, firstExecutionRunId, operation, ...(requestedBy ? { requestedBy } : {}) }),
        (r) =>
          `cluster ${cluster} locked for ${operation}` +
          (r.forceReleased ? `; released the stale lock of ${r.forceReleased.operation} ${r.forceReleased.workflowId}` : ''),
      )
      .catch((err: unknown) => {
        busy = isBusy(err);
        throw err;
      });
    return await fn();
  } finally {
    // Also after a failed or cancelled acquire (it may have been granted before the failure);
    // release is a no-op for a run that does not hold the lock. Not after a refusal: nothing to do.
    if (!busy) {
      await CancellationScope.nonCancellable(() =>
        steps.run(
          'unlock',
          () => lockActs.lockRelease({ cluster, workflowId, runId, firstExecutionRunId }),
          (r) => (r.released ? `cluster ${cluster} released` : 'was not held'),
        ),
      ).catch(() => undefined); // recorded as failed in the step log; never hides fn's own outcome
    }
  }
}
