/**
 * Checking who made a decision, inside the workflow: an Ed25519 signature (pure JS, deterministic)
 * over decisionMessage(...) with a public key from the cluster's layout, so the identity counted
 * is the one the console signed in, or the owner of the key the CLI signed with.
 */
import { ed25519 } from '@noble/curves/ed25519';
import { hexToBytes } from '@noble/curves/utils';
import { decisionMessage, startMessage, type StartProof } from '../../contract/decision-proof';
import type { Decision } from '../../contract/messages';

export type Identity = { ok: true; who: string; verifiedBy: string | null } | { ok: false; reason: string };

const HEX_RE = /^[0-9a-f]+$/;

function verified(signature: string, message: string, key: string): boolean {
  const sig = signature.toLowerCase();
  if (sig.length !== 128 || !HEX_RE.test(sig)) return false;
  try {
    return ed25519.verify(hexToBytes(sig), new TextEncoder().encode(message), hexToBytes(key));
  } catch {
    return false;
  }
}

/**
 * Who started the run, as far as can be told: the signer's identity when the input's startProof
 * verifies for this run, else the typed `requestedBy`, unverified (with why, when a proof was there).
 */
export function identifyStarter(
  proof: StartProof | undefined,
  at: { workflowId: string; workflowType: string; cluster: string },
  requestedBy: string,
  keys: Record<string, string>,
): { who: string; verifiedBy: string | null; problem: string | null } {
  const who = requestedBy.trim().toLowerCase();
  if (proof === undefined || proof === null) return { who, verifiedBy: null, problem: null };
  if (typeof proof !== 'object' || typeof proof.key !== 'string' || typeof proof.signature !== 'string' || typeof proof.signedAt !== 'string')
    return { who, verifiedBy: null, problem: 'the start proof is malformed' };
  const key = keys[proof.key];
  if (!key) return { who, verifiedBy: null, problem: `the start is signed with "${proof.key}", a key this cluster does not know` };
  if (proof.key.startsWith('operator:') && proof.key.slice('operator:'.length) !== who)
    return { who, verifiedBy: null, problem: `the start names "${who}" but is signed with ${proof.key}'s key` };
  const message = startMessage({ ...at, requestedBy: who, signedAt: proof.signedAt });
  if (!verified(proof.signature, message, key)) return { who, verifiedBy: null, problem: `the start's signature does not verify with ${proof.key}'s key` };
  return { who, verifiedBy: proof.key, problem: null };
}

/**
 * Who a decision is from: the signer's identity when its proof verifies, the typed name when it
 * carries none (unverified), or why it is refused (a proof that does not verify is never
 * unverified: it is refused).
 */
export function identify(d: Decision, at: { workflowId: string; runId: string; waitId: string }, keys: Record<string, string>): Identity {
  const by = (typeof d.by === 'string' ? d.by : '').trim().toLowerCase();
  const p = d.proof;
  if (p === undefined || p === null) return { ok: true, who: by, verifiedBy: null };
  if (typeof p !== 'object' || typeof p.key !== 'string' || typeof p.signature !== 'string' || typeof p.signedAt !== 'string' || typeof p.waitId !== 'string')
    return { ok: false, reason: "the decision's proof is malformed: expected { key, signedAt, signature, waitId }" };
  const key = keys[p.key];
  if (!key) {
    const known = Object.keys(keys);
    return {
      ok: false,
      reason: `the decision is signed with "${p.key}", a key this cluster does not know (keys: ${known.length ? known.join(', ') : 'none'})`,
    };
  }
  if (p.key.startsWith('operator:') && p.key.slice('operator:'.length) !== by)
    return { ok: false, reason: `the decision names "${by}" but is signed with ${p.key}'s key: an operator's key signs only that operator's decisions` };
  if (p.waitId !== at.waitId) return { ok: false, reason: `the decision was signed for wait ${p.waitId}; the run now waits at ${at.waitId}: decide again` };
  const message = decisionMessage({
    workflowId: at.workflowId,
    runId: at.runId,
    waitId: p.waitId,
    checkpoint: String(d.checkpoint),
    decision: d.decision,
    by,
    comment: typeof d.comment === 'string' ? d.comment : '',
    signedAt: p.signedAt,
  });
  const good = verified(p.signature, message, key);
  if (!good) return { ok: false, reason: `the decision's signature does not verify with ${p.key}'s key (forged, altered, or signed for another run)` };
  return { ok: true, who: by, verifiedBy: p.key };
}
