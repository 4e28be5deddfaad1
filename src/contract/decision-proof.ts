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

export function decisionMessage(f: SignedFields): string {
  const one = (v: string) => v.replace(/[\r\n]+/g, ' ');
  return [DECISION_PROOF_VERSION, f.workflowId, f.runId, f.waitId, f.checkpoint, f.decision, one(f.by.trim().toLowerCase()), one(f.comment), f.signedAt].join(
    '\n',
  );
}
