/**
 * What a signed decision signs: the run, the wait, the decision, who and when, one field per line
 * (a field cannot hold a newline, so no two decisions sign the same text). The console and the
 * CLI sign it (node:crypto Ed25519); the workflow verifies it (workflows/lib/decision-proof.ts).
 */
export interface SignedFields {
  workflowId: string;
  runId: string;
  waitId: string;
  checkpoint: string;
  decision: 'approve' | 'reject';
  by: string;
  comment: string;
  signedAt: string;
}

export const DECISION_PROOF_VERSION = 'switchyard-decision/v1';

/** A field as signed: on one line (so fields cannot run into each other); names lowercase. */
const line = (v: string) => v.replace(/[\r\n]+/g, ' ');
const who = (v: string) => line(v.trim().toLowerCase());

export function decisionMessage(f: SignedFields): string {
  return [DECISION_PROOF_VERSION, f.workflowId, f.runId, f.waitId, f.checkpoint, f.decision, who(f.by), line(f.comment), f.signedAt].join('\n');
}

/** What a signed start signs: who started which run of which runbook on which cluster, and when. */
export interface StartFields {
  workflowId: string;
  workflowType: string;
  cluster: string;
  requestedBy: string;
  signedAt: string;
}

export const START_PROOF_VERSION = 'switchyard-start/v1';

export function startMessage(f: StartFields): string {
  return [START_PROOF_VERSION, f.workflowId, f.workflowType, f.cluster, who(f.requestedBy), f.signedAt].join('\n');
}

/** A runbook input's `startProof`: the console (or an operator's key) vouches for `requestedBy`. */
export interface StartProof {
  key: string;
  signedAt: string;
  signature: string;
}
