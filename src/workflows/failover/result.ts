/**
 * The one place a failover's result is built, from what the run did as far as it got: every
 * exit (a plan, an abort, a completed or resumed promotion) passes its outcome here.
 */
import type { PlanStep } from '../../contract/messages';
import type { CheckpointOutcome } from '../lib/checkpoint';
import type { DataLoss } from '../lib/data-loss';
import type { Ctx, FailoverResult, LayoutNode } from './types';

export interface RunOutcome {
  outcome: FailoverResult['outcome'];
  state: string;
  timeline: FailoverResult['timeline'];
  /** Which node is primary afterwards: the old one (nothing promoted) or the target. */
  primary: 'old' | 'target';
  /** Former primaries to rebuild (only after a promotion). */
  needsRejoin?: FailoverResult['topology']['needsRejoin'];
  abortedBecause?: string;
  fenced?: boolean;
  /** The measured data loss (only after a promotion). */
  dataLoss?: DataLoss;
  rto?: FailoverResult['rto'];
  checkpoints?: CheckpointOutcome[];
  traffic?: FailoverResult['traffic'];
  hooks?: FailoverResult['hooks'];
  plan?: PlanStep[];
}

/** The result, with the step log as it is now; what the outcome does not name is what a run that changed nothing would say. */
export function failoverResult(c: Ctx, old: LayoutNode, target: LayoutNode, o: RunOutcome): FailoverResult {
  const primary = o.primary === 'target' ? target : old;
  return {
    cluster: c.cluster,
    outcome: o.outcome,
    dryRun: c.dryRun,
    reason: c.reason,
    requestedBy: c.requestedBy,
    from: { site: old.site, node: old.name },
    to: { site: target.site, node: target.name },
    topology: { primarySite: primary.site, primaryNode: primary.name, needsRejoin: o.needsRejoin ?? [] },
    abortedBecause: o.abortedBecause ?? null,
    state: o.state,
    fenced: o.fenced ?? false,
    dataLoss: o.dataLoss ?? null,
    dataLostBytes: o.dataLoss?.bytes ?? null,
    rto: o.rto ?? { fromDecisionSeconds: null, fromStartSeconds: null },
    timeline: o.timeline,
    checkpoints: o.checkpoints ?? [],
    traffic: o.traffic ?? [],
    hooks: o.hooks ?? [],
    plan: o.plan ?? [],
    steps: c.steps.snapshot(),
  };
}
