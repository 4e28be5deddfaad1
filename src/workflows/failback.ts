/**
 * failback: return to the original layout in one run: rejoin the preferred site's former primary
 * if it is not a streaming standby yet, wait until it is in sync, then switch over back to it. One visible parent holding the cluster's lock;
 * the rejoin and the switchover are its child runs (ids `<parent>-rejoin`, `<parent>-switchover`),
 * each with its own step log, so a person sees the whole and each part.
 */
import { ApplicationFailure, executeChild, workflowInfo } from '@temporalio/workflow';
import { withClusterLock } from './lib/with-cluster-lock';
import { describeNode, notifyVia, onePrimary, reads, runbookInput, seconds } from './lib/runbook';
import { StepLog } from './lib/steps';
import type { StepRecord } from '../contract/messages';
import type { rejoin as rejoinWorkflow, RejoinResult } from './rejoin';
import type { switchover as switchoverWorkflow, SwitchoverResult } from './switchover';

export interface FailbackInput {
  cluster: string;
  requestedBy: string;
  dryRun?: boolean;
}

export interface FailbackResult {
  cluster: string;
  outcome: 'completed' | 'already' | 'aborted' | 'planned';
  preferred: { site: string; node: string };
  rejoin: RejoinResult | null;
  switchover: SwitchoverResult | null;
  state: string;
  durationSeconds: number;
  steps: StepRecord[];
}

export async function failback(input: FailbackInput): Promise<FailbackResult> {
  const { cluster, requestedBy, dryRun } = runbookInput('failback', input);
  const steps = new StepLog('failback', cluster);
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `preferred primary site ${l.preferredPrimary}`,
  );
  const pref = layout.nodes.find((n) => n.site === layout.preferredPrimary);
  if (!pref) throw ApplicationFailure.nonRetryable(`cluster ${cluster} has no database node at its preferred site ${layout.preferredPrimary}`, 'ConfigError');
  const { workflowId } = workflowInfo();
  const notify = notifyVia(layout.notify, cluster, workflowId);
  const startedMs = Date.now();
  const result = (
    outcome: FailbackResult['outcome'],
    state: string,
    parts: { rejoin: RejoinResult | null; switchover: SwitchoverResult | null },
    durationSeconds: number,
  ): FailbackResult => ({
    cluster,
    preferred: { site: pref.site, node: pref.name },
    outcome,
    rejoin: parts.rejoin,
    switchover: parts.switchover,
    state,
    durationSeconds,
    steps: steps.snapshot(),
  });

  const body = async (): Promise<FailbackResult> => {
    const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`preflight:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
    const me = nodes.find((n) => n.node === pref.name)!;
    const others = nodes.filter((n) => n.node !== pref.name);
    if (me.reachable && me.inRecovery === false && !others.some((o) => o.reachable && o.inRecovery === false)) {
      steps.note('result', `${pref.name} at ${pref.site} is already the primary: the cluster is in its original layout`);
      return result('already', `${pref.name} is primary already`, { rejoin: null, switchover: null }, 0);
    }
    const current = onePrimary(cluster, nodes, pref.name);
    const streaming = me.reachable && me.inRecovery === true && me.walReceiver?.status === 'streaming';
    const first = streaming ? `${pref.name} already streams` : `rejoin ${pref.name} to follow ${current.node}`;
    steps.note('plan', `${first}, then switch over from ${current.node} back to ${pref.site}`);
    if (dryRun) {
      const childArgs = { cluster, requestedBy, dryRun: true };
      const r = streaming
        ? null
        : await executeChild<typeof rejoinWorkflow>('rejoin', { workflowId: `${workflowId}-rejoin`, args: [{ ...childArgs, node: pref.name }] });
      return result('planned', 'dry run: nothing was changed', { rejoin: r, switchover: null }, 0);
    }
    await notify('failback.started', `failback of ${cluster} to ${pref.site} started by ${requestedBy} (${workflowId})`);
    const rejoined = streaming
      ? null
      : await steps.run(
          'rejoin',
          () =>
            executeChild<typeof rejoinWorkflow>('rejoin', {
              workflowId: `${workflowId}-rejoin`,
              args: [{ cluster, node: pref.name, requestedBy, method: 'auto', underParentLock: true }],
            }),
          (r) =>
            `${pref.name} streams from ${r.primary.node} ` +
            `(${r.method ?? 'already'}${r.divergedBytes ? `; ${r.divergedBytes} bytes of diverged WAL discarded` : ''}) in ${r.durationSeconds} s`,
        );
    if (streaming) steps.skip('rejoin', `${pref.name} already streams from ${current.node}`);
    const sw = await steps.run(
      'switchover',
      () =>
        executeChild<typeof switchoverWorkflow>('switchover', {
          workflowId: `${workflowId}-switchover`,
          args: [{ cluster, to: pref.site, requestedBy, underParentLock: true }],
        }),
      (r) =>
        r.outcome === 'completed' ? `${r.to.node} primary again; write downtime ${r.writeDowntimeMs ?? '?'} ms` : `${r.outcome}: ${r.abortedBecause ?? ''}`,
    );
    if (sw.outcome !== 'completed') {
      const state = `switchover back to ${pref.site} stopped: ${sw.abortedBecause ?? sw.outcome}; ${sw.state}`;
      await notify('failback.aborted', state);
      return result('aborted', state, { rejoin: rejoined, switchover: sw }, seconds(startedMs, Date.now()));
    }
    const state = `back in the original layout: ${sw.state}`;
    steps.note('result', state);
    await notify('failback.completed', `failback of ${cluster}: ${state}`);
    return result('completed', state, { rejoin: rejoined, switchover: sw }, seconds(startedMs, Date.now()));
  };
  if (dryRun) return body();
  return withClusterLock(cluster, 'failback', requestedBy, steps, body);
}
