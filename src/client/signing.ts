/**
 * Ed25519 keys for signed decisions (node:crypto): the console's and an operator's own. A key file
 * holds a PKCS#8 PEM private key (`openssl genpkey -algorithm ed25519`, or `switchyard operator
 * keygen`) or its 32-byte seed as 64 hex digits. What is signed is decisionMessage(...).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { decisionMessage, startMessage, type StartProof } from '../contract/decision-proof';
import type { Decision, DecisionProof } from '../contract/messages';

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A private key from a key file's text; `where` names the file in errors (never its content). */
export function parseSigningKey(text: string, where: string): KeyObject {
  const t = text.trim();
  let key: KeyObject;
  try {
    if (/^[0-9a-fA-F]{64}$/.test(t))
      key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(t, 'hex')]), format: 'der', type: 'pkcs8' });
    else key = createPrivateKey({ key: t, format: 'pem' });
  } catch {
    throw new Error(`${where}: not an Ed25519 private key (expected PKCS#8 PEM, or 64 hex digits of seed)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${where}: a ${key.asymmetricKeyType} key; decisions are signed with Ed25519 keys`);
  return key;
}

/** The 32-byte public key in hex, as the topology writes it. */
export function publicKeyHex(key: KeyObject): string {
  return createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
}

export function generateSigningKey(): { privatePem: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: publicKeyHex(privateKey) };
}

/** A decision with its proof: `signer` is "console" or "operator:<name>"; `at` the run and wait it is for. */
export function signDecision(
  d: Decision,
  at: { workflowId: string; runId: string; waitId: string },
  key: KeyObject,
  signer: string,
  now = new Date(),
): Decision {
  const signedAt = now.toISOString();
  const message = decisionMessage({
    workflowId: at.workflowId,
    runId: at.runId,
    waitId: at.waitId,
    checkpoint: d.checkpoint,
    decision: d.decision,
    by: d.by,
    comment: d.comment ?? '',
    signedAt,
  });
  const proof: DecisionProof = { key: signer, signedAt, waitId: at.waitId, signature: sign(null, Buffer.from(message, 'utf8'), key).toString('hex') };
  return { ...d, proof };
}

/** A runbook input with a start proof: the signer vouches that `requestedBy` started this run. */
export function signStart<T extends { cluster: string; requestedBy: string }>(
  input: T,
  at: { workflowId: string; workflowType: string },
  key: KeyObject,
  signer: string,
  now = new Date(),
): T & { startProof: StartProof } {
  const signedAt = now.toISOString();
  const message = startMessage({ ...at, cluster: input.cluster, requestedBy: input.requestedBy, signedAt });
  return { ...input, startProof: { key: signer, signedAt, signature: sign(null, Buffer.from(message, 'utf8'), key).toString('hex') } };
}
