/**
 * The payload codec: AES-256-GCM over each whole serialized payload (its metadata and data), a
 * random 96-bit IV per payload, the 128-bit tag after the ciphertext, and the key's id in the
 * encrypted payload's metadata. Several keys for rotation: the newest (or the named one) encrypts,
 * any of them decrypts. A payload that was never encrypted (a person's plain JSON from
 * `temporal workflow start` or a UI signal) passes through decode unchanged.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** The metadata key naming the key an encrypted payload was made with. */
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const ProtoPayload = temporal.api.common.v1.Payload;

export interface CodecKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

const text = (b: Uint8Array | null | undefined): string | undefined => (b ? Buffer.from(b).toString('utf8') : undefined);

export class AesGcmCodec implements PayloadCodec {
  readonly encryptKeyId: string;
  readonly keyIds: readonly string[];
  private readonly keys = new Map<string, Buffer>();

  /** `keys` oldest first: the last one encrypts unless `encryptWith` names another. */
  constructor(keys: readonly CodecKey[], opts: { encryptWith?: string } = {}) {
    if (keys.length === 0) throw new Error('the payload codec needs at least one key');
    for (const k of keys) {
      if (!k.id) throw new Error('a payload codec key needs an id');
      if (this.keys.has(k.id)) throw new Error(`payload codec key id "${k.id}" appears twice`);
      if (k.key.length !== KEY_BYTES) throw new Error(`payload codec key "${k.id}" has ${k.key.length} bytes; AES-256 needs ${KEY_BYTES}`);
      this.keys.set(k.id, Buffer.from(k.key));
    }
    this.keyIds = keys.map((k) => k.id);
    const enc = opts.encryptWith ?? keys[keys.length - 1].id;
    if (!this.keys.has(enc)) throw new Error(`encryptWith "${enc}": the codec has no such key (it has ${this.keyIds.map((i) => `"${i}"`).join(', ')})`);
    this.encryptKeyId = enc;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.encryptKeyId)!;
    return payloads.map((p) => {
      if (text(p.metadata?.encoding) === ENCRYPTED_ENCODING) return p; // never twice
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(ProtoPayload.encode(p).finish()), cipher.final()]);
      return {
        metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(this.encryptKeyId) },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (text(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const id = text(p.metadata?.[KEY_ID_METADATA]);
      if (id === undefined) throw new Error(`an encrypted payload has no ${KEY_ID_METADATA} metadata, so no key can be chosen for it`);
      const key = this.keys.get(id);
      if (!key) throw new Error(`payload encrypted with key "${id}", which this codec does not have (it has: ${this.keyIds.map((i) => `"${i}"`).join(', ')})`);
      const data = Buffer.from(p.data ?? []);
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error(`payload encrypted with key "${id}" is too short to be one (${data.length} bytes)`);
      let plain: Buffer;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new Error(`payload encrypted with key "${id}" does not decrypt with this process's key "${id}" (wrong key, or the payload was altered)`);
      }
      let decoded: temporal.api.common.v1.Payload;
      try {
        decoded = ProtoPayload.decode(plain);
      } catch {
        throw new Error(`payload encrypted with key "${id}" decrypts, but not to a Temporal payload`);
      }
      // An absent bytes field decodes as protobufjs's default, a plain empty array: made bytes again.
      const out: Payload = { metadata: decoded.metadata ?? {}, data: decoded.data instanceof Uint8Array ? decoded.data : new Uint8Array() };
      if (decoded.externalPayloads?.length) out.externalPayloads = decoded.externalPayloads;
      return out;
    });
  }
}

/** A key from its text: 64 hex digits, or base64 of 32 bytes. Errors name the key id, never the value. */
export function parseCodecKey(id: string, value: string): CodecKey {
  const t = value.trim();
  const fail = (what: string) =>
    new Error(`payload codec key "${id}": ${what}; expected 32 bytes as 64 hex digits or as base64 (e.g. \`openssl rand -hex 32\`)`);
  if (t === '') throw fail('the key is empty');
  if (/^[0-9a-fA-F]{64}$/.test(t)) return { id, key: Buffer.from(t, 'hex') };
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) throw fail(`got ${t.length} characters that are neither hex nor base64`);
  const b = Buffer.from(t, 'base64');
  if (b.length !== KEY_BYTES) throw fail(`got ${/^[0-9a-fA-F]+$/.test(t) ? `${t.length} hex digits or ` : ''}base64 of ${b.length} bytes`);
  return { id, key: b };
}

/** A new key as 64 hex digits. */
export function generateCodecKey(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}
