/**
 * The guard, client side: a failover that promoted asks the cluster's guard workflow
 * (`switchyard-guard-<cluster>`, src/workflows/guard.ts) to watch the former primary, starting it
 * when it is not running (signal-with-start, so one guard per cluster whatever started it); rejoin
 * tells it the node is a standby again. Both are idempotent.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { guardReleaseSignal, guardStatusQuery, guardWatchSignal, guardWorkflowId, type GuardStatus } from '../contract/guard';
import type { Runtime } from './runtime';
import { currentTaskQueue, temporalClient } from './temporal-client';

export function guardActivities(rt: Runtime) {
  const client = (): Client => temporalClient(rt, 'start the guard');

  return {
    /** Watch a fenced former primary until rejoin: starts the cluster's guard when it is not running. */
    guardWatch: rt.activity(
      async (
        input: { cluster: string; node: string; newPrimary: string; fencedBy: string; intervalSeconds?: number },
        call,
      ): Promise<{ workflowId: string; runId: string; detail: string }> => {
        call.top.node(input.cluster, input.node);
        call.top.node(input.cluster, input.newPrimary);
        const id = guardWorkflowId(input.cluster);
        const h = await client().workflow.signalWithStart('guard', {
          workflowId: id,
          taskQueue: currentTaskQueue(),
          args: [{ cluster: input.cluster, ...(input.intervalSeconds ? { intervalSeconds: input.intervalSeconds } : {}) }],
          signal: guardWatchSignal,
          signalArgs: [{ node: input.node, newPrimary: input.newPrimary, fencedBy: input.fencedBy, since: rt.now().toISOString() }],
        });
        rt.log.info('guard watching', { cluster: input.cluster, node: input.node, guard: id });
        return { workflowId: id, runId: h.signaledRunId, detail: `the guard ${id} watches ${input.node} until rejoin makes it a standby` };
      },
    ),

    /** Tell the guard a node is a standby again (no-op when no guard runs). */
    guardRelease: rt.activity(async (input: { cluster: string; node: string; by: string; reason: string }): Promise<{ released: boolean; detail: string }> => {
      const id = guardWorkflowId(input.cluster);
      try {
        await client().workflow.getHandle(id).signal(guardReleaseSignal, { node: input.node, by: input.by, reason: input.reason });
        return { released: true, detail: `told the guard ${id} that ${input.node} ${input.reason}` };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { released: false, detail: `no guard runs for ${input.cluster}` };
        throw err;
      }
    }),

    /** What the guard watches and has done; null when no guard runs. */
    guardStatus: rt.activity(async (input: { cluster: string }): Promise<GuardStatus | null> => {
      const h = client().workflow.getHandle(guardWorkflowId(input.cluster));
      try {
        if ((await h.describe()).status.name !== 'RUNNING') return null;
        return await h.query(guardStatusQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    }),
  };
}
