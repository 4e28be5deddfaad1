/**
 * Undoing a failover that stopped before promotion: what it changed, newest first, and the fence
 * of the old primary lifted only while the node that was to be promoted is still a standby.
 */
import { workflowInfo } from '@temporalio/workflow';
import { actions, describeNode, reads, runUndo } from '../lib/runbook';
import { explainState, nodeState } from '../lib/node-state';
import type { StepLog } from '../lib/steps';
import type { Attempt, Ctx, LayoutNode } from './types';

/** Undo, newest first, each best effort; returns the state the cluster was left in, for a person. */
export async function undoAll(steps: StepLog, a: Pick<Attempt, 'undo' | 'old' | 'target' | 'fenced' | 'instanceStopped'>): Promise<string> {
  const { done, failed } = await runUndo(steps, a.undo);
  const parts = [`nothing was promoted: ${a.target.name} (${a.target.site}) is still a standby`];
  if (done.length) parts.push(`undone: ${done.join(', ')}`);
  if (failed.length) parts.push(`could not undo: ${failed.join(', ')}`);
  if (!done.length && !failed.length) parts.push(a.fenced ? `${a.old.name} was already down; nothing was changed` : 'nothing was changed');
  if (a.instanceStopped) parts.push(`the EC2 instance of ${a.old.name} is stopped: start it by hand if it should serve`);
  return parts.join('; ');
}

/**
 * Undo a fence before promotion (an aborted run), failing closed: only while the node that was to
 * be promoted is still a standby (else starting the old primary could make two primaries), remove
 * this run's marker and standby.signal, and start PostgreSQL again if this run stopped it.
 */
export async function unfence(c: Ctx, old: LayoutNode, target: LayoutNode, marked: boolean, restart: boolean): Promise<string> {
  const t = await c.steps.run(`standby-still:${target.name}`, () => reads.pgStatus({ cluster: c.cluster, node: target.name }), describeNode).catch(() => null);
  const state = nodeState(t);
  if (state !== 'standby' && state !== 'standby-streaming') {
    throw new Error(
      `${old.name} was left fenced: ${target.name} is ${t ? describeNode(t) : 'unreadable'} (${explainState(state)}), ` +
        `so starting ${old.name} again could make two primaries. ` +
        `Once you know which node should be primary, start it by hand or run \`switchyard rejoin ${c.cluster} --node ${old.name}\``,
    );
  }
  const done: string[] = [];
  if (marked) done.push((await actions.fenceClear({ cluster: c.cluster, node: old.name, fencedBy: workflowInfo().workflowId })).detail);
  if (restart) done.push((await actions.pgStart({ cluster: c.cluster, node: old.name })).detail);
  return done.join('; ') || 'nothing to undo';
}
