/**
 * What earlier runs recorded, read back through Temporal: the old primary's last known position
 * from the newest completed `readiness` run of a cluster (its report's primaryLsn), for a failover
 * whose old primary can no longer be asked.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type { ReadinessReport } from '../contract/readiness';
import { errorMessage, heartbeat } from './activity-context';
import type { Runtime } from './runtime';
import { temporalClient } from './temporal-client';
import type { LastPrimaryPosition } from '../contract/observations';

/** Completed runs whose results are read, newest first by close time. */
const LOOK_AT = 20;
/** Visibility rows read at most before sorting (the server lists newest first already). */
const LIST_CAP = 1_000;

export function historyActivities(rt: Runtime) {
  const client = (): Client => temporalClient(rt, 'read earlier runs');

  return {
    /**
     * The primary's position as the newest completed readiness run of the cluster recorded it
     * (visibility: SwitchyardCluster, SwitchyardOperation = "readiness", ExecutionStatus =
     * "Completed"; the newest 20 by close time are read). found:false when none recorded one.
     */
    lastPrimaryPosition: rt.activity(async (input: { cluster: string }, call): Promise<LastPrimaryPosition> => {
      call.top.cluster(input.cluster);
      const c = client();
      // The cluster name passed the topology's name rule (lowercase letters, digits, "-", "_"): safe to quote.
      const query = `SwitchyardCluster = "${input.cluster}" AND SwitchyardOperation = "readiness" AND ExecutionStatus = "Completed"`;
      const runs: WorkflowExecutionInfo[] = [];
      for await (const wf of c.workflow.list({ query, pageSize: 200 })) {
        runs.push(wf);
        if (runs.length % 200 === 0) heartbeat({ listed: runs.length });
        if (runs.length >= LIST_CAP) break;
      }
      const closed = (w: WorkflowExecutionInfo) => w.closeTime?.getTime() ?? 0;
      runs.sort((a, b) => closed(b) - closed(a));
      const none: LastPrimaryPosition = { found: false, lsn: null, node: null, site: null, observedAt: null, workflowId: null, detail: '' };
      if (runs.length === 0)
        return { ...none, detail: `no completed readiness run of cluster "${input.cluster}" is visible in Temporal: no last primary position is known` };
      const unreadable: string[] = [];
      const looked = runs.slice(0, LOOK_AT);
      for (const wf of looked) {
        heartbeat({ workflowId: wf.workflowId });
        let report: ReadinessReport | null;
        try {
          report = (await c.workflow.getHandle(wf.workflowId, wf.runId).result()) as ReadinessReport | null;
        } catch (err) {
          unreadable.push(`${wf.workflowId}: ${errorMessage(err)}`);
          continue;
        }
        if (report && typeof report.primaryLsn === 'string' && report.primaryLsn) {
          return {
            found: true,
            lsn: report.primaryLsn,
            node: report.primaryNode ?? null,
            site: report.primarySite ?? null,
            observedAt: report.observedAt ?? null,
            workflowId: wf.workflowId,
            detail:
              `readiness run ${wf.workflowId} (completed ${wf.closeTime?.toISOString() ?? '?'}) ` +
              `saw ${report.primaryNode ?? '?'} (${report.primarySite ?? '?'}) as primary at ${report.primaryLsn}, observed ${report.observedAt ?? '?'}`,
          };
        }
      }
      return {
        ...none,
        detail:
          `none of the ${looked.length} newest completed readiness runs of cluster "${input.cluster}" recorded a primary position` +
          (unreadable.length ? ` (results unreadable: ${unreadable.slice(0, 3).join('; ')}${unreadable.length > 3 ? '; …' : ''})` : ''),
      };
    }),
  };
}
