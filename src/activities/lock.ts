/**
 * The per-cluster operation lock, client side: a runbook run takes the lock of its cluster from
 * the lock workflow `switchyard-lock-<cluster>` (src/workflows/cluster-lock.ts) with
 * Update-With-Start, so the lock workflow is started if it is not running. A refusal names the
 * run in the way; a holder that is no longer running (terminated, timed out, failed without
 * releasing) is force-released and the acquire tried once more.
 */
import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  acquireUpdate,
  forceReleaseUpdate,
  lockWorkflowId,
  releaseUpdate,
  type AcquireResult,
  type clusterLock,
  type LockHolder,
  type ReleaseResult,
} from '../workflows/cluster-lock';
import { configError, ErrorType } from './common';
import type { Runtime } from './deps';

export interface LockAcquireInput {
  cluster: string;
  workflowId: string;
  runId: string;
  operation: string;
  requestedBy?: string;
}

export interface LockAcquireResult {
  holder: LockHolder;
  /** The stale holder this acquire force-released first, if any. */
  forceReleased: LockHolder | null;
}

export interface LockReleaseInput {
  cluster: string;
  workflowId: string;
  runId: string;
}

export function busyMessage(cluster: string, h: LockHolder): string {
  return `cluster ${cluster} is busy: ${h.operation} ${h.workflowId} (started ${h.requestedBy ? `by ${h.requestedBy} ` : ''}at ${h.since}) is running; wait for it or cancel it`;
}

/** The task queue of the calling activity; outside one (unit use), the worker's default. */
function currentTaskQueue(): string {
  try {
    return Context.current().info.taskQueue;
  } catch {
    return 'switchyard';
  }
}

/** The holder's run status, or null when the server no longer knows the run. */
async function holderStatus(client: Client, h: LockHolder): Promise<string | null> {
  try {
    return (await client.workflow.getHandle(h.workflowId, h.runId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

export function lockActivities(rt: Runtime) {
  const client = (): Client => {
    const c = rt.deps.temporal?.();
    if (!c) throw configError('this worker has no Temporal client (ActivityDeps.temporal), so it cannot take cluster locks');
    return c;
  };

  async function tryAcquire(c: Client, input: LockAcquireInput): Promise<AcquireResult> {
    const { cluster, workflowId, runId, operation, requestedBy } = input;
    return c.workflow.executeUpdateWithStart(acquireUpdate, {
      args: [{ workflowId, runId, operation, ...(requestedBy ? { requestedBy } : {}) }],
      startWorkflowOperation: new WithStartWorkflowOperation<typeof clusterLock>('clusterLock', {
        workflowId: lockWorkflowId(cluster),
        taskQueue: currentTaskQueue(),
        args: [{ cluster }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
  }

  return {
    async lockAcquire(input: LockAcquireInput): Promise<LockAcquireResult> {
      const c = client();
      let res = await tryAcquire(c, input);
      let forceReleased: LockHolder | null = null;
      if (!res.granted && res.holder) {
        const stale = res.holder;
        const status = await holderStatus(c, stale);
        if (status === 'RUNNING') throw ApplicationFailure.create({ message: busyMessage(input.cluster, stale), type: ErrorType.ClusterBusy, nonRetryable: true, details: [stale] });
        const reason = `holder ${stale.workflowId} (run ${stale.runId}) is ${status ?? 'gone from the server'}`;
        rt.log.warn(`force-releasing the lock of cluster ${input.cluster}: ${reason}`, { cluster: input.cluster, holder: stale.workflowId });
        const fr = await c.workflow.getHandle(lockWorkflowId(input.cluster)).executeUpdate(forceReleaseUpdate, { args: [{ workflowId: stale.workflowId, runId: stale.runId, reason }] });
        if (fr.released) forceReleased = stale;
        res = await tryAcquire(c, input);
      }
      if (!res.granted || !res.holder) {
        const h = res.holder;
        throw ApplicationFailure.create({ message: h ? busyMessage(input.cluster, h) : `cluster ${input.cluster} lock refused without a holder`, type: ErrorType.ClusterBusy, nonRetryable: true, details: h ? [h] : [] });
      }
      return { holder: res.holder, forceReleased };
    },

    async lockRelease(input: LockReleaseInput): Promise<ReleaseResult> {
      const c = client();
      try {
        return await c.workflow.getHandle(lockWorkflowId(input.cluster)).executeUpdate(releaseUpdate, { args: [{ workflowId: input.workflowId, runId: input.runId }] });
      } catch (err) {
        // No lock workflow running: nothing is held.
        if (err instanceof WorkflowNotFoundError) return { released: false, holder: null };
        throw err;
      }
    },
  };
}
