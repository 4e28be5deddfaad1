/**
 * What a watch asks Temporal about: whether a runbook holds the cluster lock right now (a
 * failover already runs: none is staged), and, when a watch is started again, the anti-flapping
 * state the previous run of the same watch kept in its memo.
 */
import type { Client } from '@temporalio/client';
import { holderQuery, lockWorkflowId, type LockHolder } from '../contract/cluster-lock';
import { ANTI_FLAP_MEMO, type AntiFlap } from '../contract/watch';
import { errorMessage } from './activity-context';
import type { Runtime } from './runtime';
import { temporalClient } from './temporal-client';

export function watchMemoryActivities(rt: Runtime) {
  const client = (): Client => temporalClient(rt, 'ask Temporal what a watch needs');
  return {
    /** The cluster lock's holder when its workflow runs; null when free or not running. */
    watchLockHolder: rt.activity(async (input: { cluster: string }): Promise<LockHolder | null> => {
      const h = client().workflow.getHandle(lockWorkflowId(input.cluster));
      try {
        const d = await h.describe();
        if (d.status.name !== 'RUNNING') return null;
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') return null;
        throw err;
      }
      return h.query(holderQuery);
    }),

    /**
     * The anti-flapping state of the newest closed run of this watch that closed in the last
     * `withinSeconds` (older ones cannot hold an automatic failover still inside its cool-down).
     */
    watchPreviousAntiFlap: rt.activity(async (input: { workflowId: string; withinSeconds: number }): Promise<{ antiFlap: AntiFlap | null; detail: string }> => {
      const since = new Date(rt.now().getTime() - input.withinSeconds * 1000).toISOString();
      let newest: { runId: string; closeTime: Date; memo?: Record<string, unknown> } | null = null;
      try {
        const q = `WorkflowId = '${input.workflowId.replace(/'/g, '')}' AND ExecutionStatus != 'Running' AND CloseTime > '${since}'`;
        for await (const w of client().workflow.list({ query: q })) {
          if (w.closeTime && (!newest || w.closeTime > newest.closeTime)) newest = { runId: w.runId, closeTime: w.closeTime, memo: w.memo };
        }
      } catch (err) {
        throw new Error(`cannot list the earlier runs of ${input.workflowId}: ${errorMessage(err)}`);
      }
      if (!newest) return { antiFlap: null, detail: `no run of ${input.workflowId} closed since ${since}` };
      const memo = newest.memo ?? (await client().workflow.getHandle(input.workflowId, newest.runId).describe()).memo;
      const a = memo?.[ANTI_FLAP_MEMO] as AntiFlap | undefined;
      return {
        antiFlap: a ?? null,
        detail: `run ${newest.runId}, closed ${newest.closeTime.toISOString()}, ${a?.last ? `last automatic failover ${a.last.workflowId}` : 'no automatic failover'}`,
      };
    }),
  };
}
