/**
 * The AES-256-GCM payload codec (src/codec/aes-gcm.ts) and its HTTP face (src/codec/codec-server.ts),
 * with the SDK's own payload converter on either side.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, ENCRYPTED_ENCODING, generateCodecKey, KEY_ID_METADATA, parseCodecKey } from '../../src/codec/aes-gcm';
import { startCodecServer } from '../../src/codec/codec-server';

const k1 = parseCodecKey('k1', generateCodecKey());
const k2 = parseCodecKey('k2', Buffer.from(generateCodecKey(), 'hex').toString('base64'));
const value = { cluster: 'demo', prompt: 'confirm dc1-db at 127.0.1.1 is dead', path: '/var/lib/postgresql/15/main' };
const plain = (): Payload => defaultPayloadConverter.toPayload(value)!;
const meta = (p: Payload, k: string) => Buffer.from(p.metadata![k]!).toString('utf8');

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
    const altered = { ...p, data: Buffer.from(p.data!).map((b, i) => (i === 20 ? b ^ 1 : b)) };
    await assert.rejects(new AesGcmCodec([k1]).decode([altered]), /altered/);
  });

  it('bad keys and key lists are refused with the id and the problem, never the value', () => {
    assert.throws(
      () => parseCodecKey('k9', 'not-a-key-value'),
      (e: Error) => /key "k9": expected 32 bytes/.test(e.message) && !e.message.includes('not-a-key'),
    );
    assert.throws(() => parseCodecKey('k9', 'abcd'), /key "k9"/);
    assert.throws(() => new AesGcmCodec([]), /at least one key/);
    assert.throws(() => new AesGcmCodec([k1, { ...k2, id: 'k1' }]), /"k1" appears twice/);
    assert.throws(() => new AesGcmCodec([{ id: 'short', key: Buffer.alloc(16) }]), /"short" has 16 bytes; AES-256 needs 32/);
    assert.throws(() => new AesGcmCodec([k1], { encryptWith: 'k7' }), /encryptWith "k7"/);
  });
});

describe('codec server', () => {
  const ui = 'http://127.0.0.1:8233';
  const call = (url: string, op: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}/${op}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const asJson = (p: Payload) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata!).map(([k, v]) => [k, Buffer.from(v!).toString('base64')])),
    data: Buffer.from(p.data!).toString('base64'),
  });

  it('encodes and decodes over HTTP; CORS for the UI origin only; bad bodies get 400 saying why; an unknown key id 422 naming it', async () => {
    const s = await startCodecServer({ listen: { host: '127.0.0.1', port: 0 }, codec: new AesGcmCodec([k1]), uiOrigins: [ui] });
    try {
      const enc = await call(s.url, 'encode', { payloads: [asJson(plain())] }, { origin: ui });
      assert.equal(enc.status, 200);
      assert.equal(enc.headers.get('access-control-allow-origin'), ui);
      const encoded = (await enc.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      assert.equal(Buffer.from(encoded.payloads[0].metadata.encoding, 'base64').toString(), ENCRYPTED_ENCODING);
      const dec = await call(s.url, 'decode', encoded, { origin: 'http://evil.example' });
      assert.equal(dec.status, 200);
      assert.equal(dec.headers.get('access-control-allow-origin'), null, 'no CORS for another origin');
      const decoded = (await dec.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      const p = decoded.payloads[0];
      assert.deepEqual(
        defaultPayloadConverter.fromPayload({ metadata: { encoding: Buffer.from(p.metadata.encoding, 'base64') }, data: Buffer.from(p.data, 'base64') }),
        value,
      );
      const pre = await fetch(`${s.url}/decode`, { method: 'OPTIONS', headers: { origin: ui, 'access-control-request-method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /x-namespace/);
      const bad = await call(s.url, 'decode', '{not json');
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { message: string }).message, /not JSON/);
      const shape = await call(s.url, 'decode', { payload: [] });
      assert.equal(shape.status, 400);
      assert.match(((await shape.json()) as { message: string }).message, /"payloads"/);
      const [other] = await new AesGcmCodec([k2]).encode([plain()]);
      const unknown = await call(s.url, 'decode', { payloads: [asJson(other)] });
      assert.equal(unknown.status, 422);
      assert.match(((await unknown.json()) as { message: string }).message, /key "k2"/);
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    } finally {
      await s.close();
    }
  });

  it('with a bearer token: 401 without it or with another, 200 with it; preflight stays open', async () => {
    const s = await startCodecServer({ listen: { host: '127.0.0.1', port: 0 }, codec: new AesGcmCodec([k1]), uiOrigins: [ui], bearerToken: 'tok-123456' });
    try {
      const body = { payloads: [asJson(plain())] };
      assert.equal((await call(s.url, 'encode', body)).status, 401);
      assert.equal((await call(s.url, 'encode', body, { authorization: 'Bearer nope' })).status, 401);
      assert.equal((await call(s.url, 'encode', body, { authorization: 'Bearer tok-123456' })).status, 200);
      assert.equal((await fetch(`${s.url}/encode`, { method: 'OPTIONS', headers: { origin: ui } })).status, 204);
    } finally {
      await s.close();
    }
  });
});
