/**
 * The AES-256-GCM payload codec (src/codec/aes-gcm.ts), with the SDK's own payload converter on
 * either side. Its HTTP face is test/unit/codec-server.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, ENCRYPTED_ENCODING, generateCodecKey, KEY_ID_METADATA, parseCodecKey } from '../../src/codec/aes-gcm';

const k1 = parseCodecKey('k1', generateCodecKey());
const k2 = parseCodecKey('k2', Buffer.from(generateCodecKey(), 'hex').toString('base64'));
const value = { cluster: 'demo', prompt: 'confirm dc1-db at 127.0.1.1 is dead', path: '/var/lib/postgresql/15/main' };
const plain = (): Payload => defaultPayloadConverter.toPayload(value)!;
const meta = (p: Payload, k: string) => Buffer.from(p.metadata![k]!).toString('utf8');
/** A payload's bytes as hex, so a Buffer and a Uint8Array of the same bytes compare equal. */
const hex = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('hex')])),
  data: Buffer.from(p.data ?? []).toString('hex'),
});

describe('payload codec', () => {
  it('encrypts the whole payload: ciphertext only, the key id in the metadata, a fresh IV each time; decodes back', async () => {
    const c = new AesGcmCodec([k1]);
    const [a] = await c.encode([plain()]);
    const [b] = await c.encode([plain()]);
    assert.equal(meta(a, 'encoding'), ENCRYPTED_ENCODING);
    assert.equal(meta(a, KEY_ID_METADATA), 'k1');
    assert.deepEqual(Object.keys(a.metadata!).sort(), ['encoding', KEY_ID_METADATA].sort(), 'the original encoding is inside the ciphertext');
    assert.ok(!Buffer.from(a.data!).toString('latin1').includes('dc1-db'));
    assert.notDeepEqual(Buffer.from(a.data!), Buffer.from(b.data!), 'equal inputs, different ciphertexts');
    const [back] = await c.decode([a]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(back), value);
    assert.deepEqual((await c.encode([a]))[0], a, 'an encrypted payload is not encrypted twice');
    const many = [plain(), defaultPayloadConverter.toPayload(undefined)!, defaultPayloadConverter.toPayload(new Uint8Array([0, 1, 255]))!];
    assert.deepEqual((await c.decode(await c.encode(many))).map(hex), many.map(hex), 'every field of every payload, in order');
    assert.deepEqual(await c.encode([]), []);
  });

  it("passes a person's plain JSON through decode unchanged", async () => {
    const p = plain();
    assert.deepEqual((await new AesGcmCodec([k1]).decode([p]))[0], p);
  });

  it('rotation: the newest key encrypts, every key decrypts; encryptWith picks another', async () => {
    const [old] = await new AesGcmCodec([k1]).encode([plain()]);
    const rotated = new AesGcmCodec([k1, k2]);
    assert.equal(rotated.encryptKeyId, 'k2');
    assert.deepEqual(defaultPayloadConverter.fromPayload((await rotated.decode([old]))[0]), value);
    assert.equal(meta((await rotated.encode([plain()]))[0], KEY_ID_METADATA), 'k2');
    assert.equal(new AesGcmCodec([k1, k2], { encryptWith: 'k1' }).encryptKeyId, 'k1');
  });

  it('a missing key id, a wrong key under the same id, and altered data are refused naming the key id', async () => {
    const [p] = await new AesGcmCodec([k1]).encode([plain()]);
    await assert.rejects(new AesGcmCodec([k2]).decode([p]), /payload encrypted with key "k1", which this codec does not have \(it has: "k2"\)/);
    const impostor = parseCodecKey('k1', generateCodecKey());
    await assert.rejects(
      new AesGcmCodec([impostor]).decode([p]),
      /key "k1" does not decrypt with this process's key "k1" \(wrong key, or the payload was altered\)/,
    );
    for (const at of [0, 20, p.data!.length - 1]) {
      const altered = { ...p, data: Buffer.from(p.data!).map((b, i) => (i === at ? b ^ 1 : b)) };
      await assert.rejects(new AesGcmCodec([k1]).decode([altered]), /key "k1" does not decrypt .*altered/, `byte ${at} (IV, ciphertext, tag)`);
    }
    const relabelled = { ...p, metadata: { ...p.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
    await assert.rejects(new AesGcmCodec([k1, parseCodecKey('k2', generateCodecKey())]).decode([relabelled]), /key "k2" does not decrypt/);
    const noId = { ...p, metadata: { encoding: p.metadata!.encoding } };
    await assert.rejects(new AesGcmCodec([k1]).decode([noId]), new RegExp(`no ${KEY_ID_METADATA} metadata`));
  });

  it('bad keys and key lists are refused with the id and the problem, never the value', () => {
    assert.throws(
      () => parseCodecKey('k9', 'not-a-key-value'),
      (e: Error) => /key "k9": got base64 of 11 bytes; expected 32 bytes/.test(e.message) && !e.message.includes('not-a-key'),
    );
    assert.throws(
      () => parseCodecKey('k9', 'secret value!'),
      (e: Error) => /key "k9": got 13 characters that are neither hex nor base64/.test(e.message) && !e.message.includes('secret'),
    );
    assert.throws(() => parseCodecKey('k9', 'abcd'), /key "k9": got 4 hex digits or base64 of 3 bytes/);
    assert.throws(() => parseCodecKey('k9', '  \n'), /key "k9": the key is empty/);
    assert.throws(() => parseCodecKey('k9', Buffer.alloc(16).toString('base64')), /key "k9": got base64 of 16 bytes/);
    const text = generateCodecKey();
    assert.match(text, /^[0-9a-f]{64}$/);
    assert.deepEqual(parseCodecKey('k9', ` ${text}\n`).key, Buffer.from(text, 'hex'), 'whitespace trimmed');
    assert.deepEqual(parseCodecKey('k9', Buffer.from(text, 'hex').toString('base64')).key, Buffer.from(text, 'hex'));
    assert.throws(() => new AesGcmCodec([]), /at least one key/);
    assert.throws(() => new AesGcmCodec([k1, { ...k2, id: 'k1' }]), /"k1" appears twice/);
    assert.throws(() => new AesGcmCodec([{ id: 'short', key: Buffer.alloc(16) }]), /"short" has 16 bytes; AES-256 needs 32/);
    assert.throws(() => new AesGcmCodec([k1], { encryptWith: 'k7' }), /encryptWith "k7"/);
  });
});
