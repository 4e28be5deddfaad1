/**
 * The codec server (src/codec/codec-server.ts) over real HTTP on a loopback port: the Temporal
 * codec protocol's JSON round trip, CORS for the UI's origins only, the bearer token, and the
 * answers to bad requests.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, ENCRYPTED_ENCODING, generateCodecKey, KEY_ID_METADATA, parseCodecKey } from '../../src/codec/aes-gcm';
import { startCodecServer, type CodecServerOptions } from '../../src/codec/codec-server';

const ui = 'http://127.0.0.1:8233';
const k1 = parseCodecKey('k1', generateCodecKey());
const k2 = parseCodecKey('k2', generateCodecKey());
const value = { cluster: 'demo', prompt: 'confirm dc1-db at 127.0.1.1 is dead' };

type JsonPayload = { metadata: Record<string, string>; data: string };
type Answer = { payloads: JsonPayload[] } & { message: string };

/** A payload in proto3 JSON, as the UI and the temporal CLI send it. */
const asJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const original = () => asJson(defaultPayloadConverter.toPayload(value)!);

async function start(t: TestContext, extra: Partial<CodecServerOptions> = {}) {
  const warnings: { o: object; m: string }[] = [];
  const logger = { info: () => undefined, warn: (o: object, m: string) => void warnings.push({ o, m }) };
  const s = await startCodecServer({ listen: { host: '127.0.0.1', port: 0 }, codec: new AesGcmCodec([k1]), uiOrigins: [ui], logger, ...extra });
  t.after(() => s.close());
  const call = (op: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${s.url}/${op}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return { url: s.url, call, warnings };
}

describe('codec server', () => {
  it('encode then decode through the JSON protocol gives back the payload the SDK made; the encoded one is ciphertext', async (t) => {
    const { url, call } = await start(t);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(new URL(url).port, '0', 'the real port');
    const enc = await call('encode', { payloads: [original(), original()] }, { 'x-namespace': 'default' });
    assert.equal(enc.status, 200);
    const encoded = (await enc.json()) as Answer;
    assert.equal(encoded.payloads.length, 2);
    const [a, b] = encoded.payloads;
    assert.equal(Buffer.from(a.metadata.encoding, 'base64').toString(), ENCRYPTED_ENCODING);
    assert.equal(Buffer.from(a.metadata[KEY_ID_METADATA], 'base64').toString(), 'k1');
    assert.ok(!Buffer.from(a.data, 'base64').toString('latin1').includes('dc1-db'));
    assert.notEqual(a.data, b.data, 'a fresh IV per payload');
    const dec = await call('decode', encoded);
    assert.equal(dec.status, 200);
    assert.deepEqual((await dec.json()) as Answer, { payloads: [original(), original()] });
    const plainThrough = await call('decode', { payloads: [original()] });
    assert.deepEqual((await plainThrough.json()) as Answer, { payloads: [original()] }, 'plain JSON passes through');
  });

  it('CORS headers for a configured UI origin only; the preflight answers 204', async (t) => {
    const { call, url } = await start(t);
    const body = { payloads: [original()] };
    const mine = await call('encode', body, { origin: ui });
    assert.equal(mine.status, 200);
    assert.equal(mine.headers.get('access-control-allow-origin'), ui);
    assert.equal(mine.headers.get('access-control-allow-credentials'), 'true');
    const other = await call('encode', body, { origin: 'http://evil.example' });
    assert.equal(other.status, 200);
    for (const h of ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-headers'])
      assert.equal(other.headers.get(h), null, `no ${h} for another origin`);
    assert.equal((await call('encode', body, { origin: `${ui}.evil.example` })).headers.get('access-control-allow-origin'), null, 'exact match only');

    const preflight = (origin: string) =>
      fetch(`${url}/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace,authorization' },
      });
    const pre = await preflight(ui);
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), ui);
    assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
    const allowed = (pre.headers.get('access-control-allow-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    assert.deepEqual(allowed.sort(), ['authorization', 'content-type', 'x-namespace']);
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    const preOther = await preflight('http://evil.example');
    assert.equal(preOther.headers.get('access-control-allow-origin'), null);
  });

  it('with a bearer token: 401 without it or with another, 200 with it; the preflight stays open', async (t) => {
    const { call, url, warnings } = await start(t, { bearerToken: 'tok-123456' });
    const body = { payloads: [original()] };
    const none = await call('encode', body, { origin: ui });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('access-control-allow-origin'), ui, 'the UI can read the refusal');
    assert.equal((await call('decode', body, { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await call('decode', body, { authorization: 'Bearer tok-1234567' })).status, 401);
    assert.equal((await call('decode', body, { authorization: 'tok-123456' })).status, 401);
    assert.equal((await call('encode', body, { authorization: 'Bearer tok-123456' })).status, 200);
    assert.equal((await fetch(`${url}/encode`, { method: 'OPTIONS', headers: { origin: ui, 'access-control-request-method': 'POST' } })).status, 204);
    assert.ok(warnings.length >= 1);
    assert.ok(!JSON.stringify(warnings).includes('tok-'), 'no token in a log line');
  });

  it('a bad body gets 400 saying what was wrong; an unknown key id 422 naming it; an oversized body 413; /healthz', async (t) => {
    const { call, url, warnings } = await start(t);
    const message = async (r: Response, status: number) => {
      assert.equal(r.status, status);
      return ((await r.json()) as Answer).message;
    };
    assert.match(await message(await call('decode', '{not json'), 400), /not JSON/);
    assert.match(await message(await call('decode', { payload: [] }), 400), /"payloads"/);
    assert.match(await message(await call('decode', { payloads: [42] }), 400), /payloads\[0\]: expected an object/);
    assert.match(
      await message(await call('decode', { payloads: [{ metadata: { encoding: 5 } }] }), 400),
      /payloads\[0\]\.metadata\.encoding: expected a base64 string/,
    );
    assert.match(await message(await call('decode', { payloads: [{ ...original(), data: 'not base64!' }] }), 400), /payloads\[0\]\.data: not base64/);
    assert.match(await message(await call('decode', { payloads: [{ metadata: 'x' }] }), 400), /payloads\[0\]\.metadata: expected an object/);

    const [other] = await new AesGcmCodec([k2]).encode([defaultPayloadConverter.toPayload(value)!]);
    assert.match(await message(await call('decode', { payloads: [asJson(other)] }), 422), /key "k2", which this codec does not have \(it has: "k1"\)/);
    assert.ok(!JSON.stringify(warnings).includes('dc1-db'), 'no payload content in a log line');

    const big = JSON.stringify({ payloads: [{ metadata: {}, data: Buffer.alloc(5 * 1024 * 1024).toString('base64') }] });
    assert.match(await message(await call('encode', big), 413), /limit/);

    const chunk = Buffer.alloc(1024 * 1024, 'A');
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull: (c) => {
        sent++;
        if (sent > 64) c.close();
        else c.enqueue(chunk);
      },
    });
    const chunked = await fetch(`${url}/encode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: endless,
      duplex: 'half',
    } as RequestInit);
    assert.match(await message(chunked, 413), /limit/, 'a chunked body is cut off at the limit too');

    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
  });
});
