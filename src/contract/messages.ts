/**
 * Messages every runbook answers. Names are part of the public surface: the Temporal UI,
 * `temporal workflow query --type progress` and the switchyard CLI use them.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export type StepState = 'running' | 'done' | 'failed' | 'skipped' | 'waiting';

export interface StepRecord {
  name: string;
  state: StepState;
  /** ISO timestamps from the workflow clock (deterministic on replay). */
  startedAt: string;
  endedAt: string | null;
  /** How many times the workflow ran this step (a retried step after a refused precondition counts again). */
  attempts: number;
  /** What the step saw or did, for a person reading the log. */
  detail: string;
}

/** One step of a run's plan (a dry run's answer, and the plan every result carries). */
export interface PlanStep {
  step: string;
  target: string;
  action: string;
}

export interface Progress {
  operation: string;
  cluster: string;
  steps: StepRecord[];
  /** The checkpoint the run waits at, or null. */
  waitingFor: string | null;
  /** What the wait needs, while the run waits (absent from runs that predate it). */
  waiting?: Waiting | null;
}

/** One approval given at a checkpoint. */
export interface Approval {
  by: string;
  /** Workflow time the approval was counted. */
  at: string;
  comment: string | null;
  /** Who vouched for `by`: "console", "operator:<name>", or null for an unsigned decision. */
  verifiedBy: string | null;
}

/** A checkpoint wait as a console or a script shows it. */
export interface Waiting {
  checkpoint: string;
  /** "<checkpoint>#<n>": the n-th wait at that checkpoint in this run; a signed decision names it. */
  waitId: string;
  /** The run a signed decision must name (a decision signed for another run does not count here). */
  runId: string;
  prompt: string;
  requestedBy: string;
  /** Who vouched for `requestedBy` (the input's start proof): "console", "operator:<name>", or null (self-declared). */
  requestedByVerifiedBy?: string | null;
  since: string;
  deadline: string;
  /** What happens at the deadline: always a safe stop. */
  onDeadline: 'abort';
  approvals: Approval[];
  /** Distinct approvals needed. */
  required: number;
  /** Who may decide (lowercase names); empty means anyone who can reach the run. */
  eligible: string[];
  /** The starter may not approve (two-person rule on a safety checkpoint). */
  starterExcluded: boolean;
  verifiedDecisions: 'required' | 'optional';
  /** The console's page for this wait, when a console is configured. */
  link: string | null;
}

export const progressQuery = defineQuery<Progress>('progress');

/** A person's decision at a checkpoint. */
export interface Decision {
  checkpoint: string;
  decision: 'approve' | 'reject';
  /** Who decides: recorded in the step log and history. */
  by: string;
  comment?: string;
  /** A signature that vouches for `by` (src/contract/decision-proof.ts); without it the decision is unverified. */
  proof?: DecisionProof;
}

export interface DecisionProof {
  /** Whose key signed: "console" (the console, for its signed-in operator) or "operator:<name>". */
  key: string;
  /** When it was signed (ISO), part of what is signed. */
  signedAt: string;
  /** Ed25519 signature of decisionMessage(...), hex. */
  signature: string;
  /** The wait signed for (Waiting.waitId). */
  waitId: string;
}

export interface DecideResult {
  accepted: true;
  checkpoint: string;
  decision: 'approve' | 'reject';
  /** Approvals counted so far and how many are needed (absent from runs that predate M-of-N). */
  approvals?: number;
  required?: number;
  /** The wait is over: enough approvals, or a rejection. */
  decided?: boolean;
}

/** What the Temporal UI, `temporal workflow signal --name decision` and approval buttons send. */
export const decisionSignal = defineSignal<[Decision]>('decision');
/** What the switchyard CLI sends: validated first, so a refusal is answered with its reason and changes nothing. */
export const decideUpdate = defineUpdate<DecideResult, [Decision]>('decide');
