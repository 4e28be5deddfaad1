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
}

export const progressQuery = defineQuery<Progress>('progress');

/** A person's decision at a checkpoint. */
export interface Decision {
  checkpoint: string;
  decision: 'approve' | 'reject';
  /** Who decides: recorded in the step log and history. */
  by: string;
  comment?: string;
}

export interface DecideResult {
  accepted: true;
  checkpoint: string;
  decision: 'approve' | 'reject';
}

/** What the Temporal UI, `temporal workflow signal --name decision` and approval buttons send. */
export const decisionSignal = defineSignal<[Decision]>('decision');
/** What the switchyard CLI sends: validated first, so a refusal is answered with its reason and changes nothing. */
export const decideUpdate = defineUpdate<DecideResult, [Decision]>('decide');
