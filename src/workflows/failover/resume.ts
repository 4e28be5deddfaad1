/**
 * A failover started again (`--to` the site already promoted) after one that promoted but did not
 * finish: the old primary must not take writes; then the steps after promotion (guard, hooks,
 * services, traffic, maintenance off), each check-then-act, so what was done is found done.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { PgNodeStatus } from '../../contract/observations';
import type { DataLoss } from '../lib/data-loss';
import { cannotWrite, explainState, nodeState } from '../lib/node-state';
import { describeNode, refused } from '../lib/runbook';
import { afterPromotion } from './after-promotion';
import { failoverResult } from './result';
import type { Ctx, FailoverResult, LayoutNode, NewSite } from './types';

export interface ResumeInput {
  old: LayoutNode;
  target: LayoutNode;
  oldStatus: PgNodeStatus;
  targetStatus: PgNodeStatus;
  newSite: NewSite;
}

/** Not measured: the promotion was done by an earlier run. */
const NOT_MEASURED: DataLoss = {
  bytes: null,
  exact: false,
  source: 'unknown',
  oldPrimaryLsn: null,
  standbyLsn: null,
  observedAt: null,
  detail: 'not measured: this run found the promotion done',
};

export async function resumeFailover(c: Ctx, p: ResumeInput): Promise<FailoverResult> {
  const { steps, cluster } = c;
  const { old, target } = p;
  const timeline = p.targetStatus.timeline ?? null;
  const oldState = nodeState(p.oldStatus);
  if (!cannotWrite(oldState)) {
    throw refused(
      `${target.name} at ${target.site} is already primary, and ${old.name} is ${describeNode(p.oldStatus)} (${explainState(oldState)}): ` +
        `finishing a failover needs ${old.name} unable to take writes. ` +
        `Fence it first (stop PostgreSQL on it, or power it off), then run \`switchyard failover ${cluster} --to ${target.site}\` again.`,
    );
  }
  if (c.dryRun) {
    steps.note('plan', `resume: ${target.name} is already primary; would run the guard, hooks, services, traffic and maintenance steps for ${target.site}`);
    return failoverResult(c, old, target, {
      outcome: 'planned',
      primary: 'target',
      state: `dry run: ${target.name} is already primary; the steps after promotion would be finished`,
      timeline: { before: timeline, after: timeline },
      plan: [{ step: 'resume', target: target.name, action: 'finish the steps after promotion (guard, hooks, services, traffic, maintenance off)' }],
    });
  }
  steps.note(
    'resume',
    `${target.name} (${target.site}) is already primary on timeline ${timeline ?? '?'} and ${old.name} ${explainState(oldState)}: ` +
      `finishing the steps after promotion`,
  );
  await c.notify(
    'failover.resumed',
    `failover of ${cluster} to ${target.site} resumed by ${c.requestedBy}: finishing the steps after promotion (${workflowInfo().workflowId})`,
  );
  return afterPromotion(c, {
    old,
    target,
    decisionMs: Date.now(),
    promoted: { timeline },
    timelineBefore: null,
    loss: { ...NOT_MEASURED },
    fenced: oldState === 'down' || oldState === 'standby' || oldState === 'standby-streaming',
    decisions: [],
    newSite: p.newSite,
  });
}
