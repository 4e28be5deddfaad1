/**
 * Pinned host keys: parsing a known_hosts-style line, its SHA256 fingerprint and the key
 * algorithms to offer for it.
 */
import { createHash } from 'node:crypto';
import { configError } from '../resolver';

// ---------------------------------------------------------------------------------------------
// Host keys

export interface PinnedKey {
  type: string;
  blob: Buffer;
  fingerprint: string;
}

/** "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Parse an OpenSSH public key line ("ssh-ed25519 AAAA… comment"). */
export function parsePinnedKey(line: string): PinnedKey {
  const [type, b64] = line.trim().split(/\s+/);
  const blob = Buffer.from(b64 ?? '', 'base64');
  // The blob starts with its own type name (uint32 length + string); it must agree with the line.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const inner = len >= 0 && 4 + len <= blob.length ? blob.subarray(4, 4 + len).toString('latin1') : '';
  if (!type || inner !== type) throw configError(`pinned host key is not a valid OpenSSH public key of type ${JSON.stringify(type)}`);
  return { type, blob, fingerprint: fingerprint(blob) };
}

/** Host key algorithms to offer for a pinned key, so the server presents exactly that key. */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}
