/**
 * The codec server protocol for the Temporal Web UI and `temporal --codec-endpoint`: POST /encode
 * and POST /decode, each taking and returning `{ "payloads": [{ "metadata": { k: base64 },
 * "data": base64 }] }` (Payloads in proto3 JSON). CORS only for the configured UI origins, an
 * optional bearer token (compared in constant time), bodies up to 4 MiB, and never a payload's
 * content in a log line. GET /healthz answers "ok".
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { Hono, type Context } from 'hono';

export interface CodecServerOptions {
  listen: { host: string; port: number };
  codec: PayloadCodec;
  uiOrigins: readonly string[];
  bearerToken?: string;
  logger?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

const MAX_BODY = 4 * 1024 * 1024;

type JsonPayload = { metadata?: Record<string, string>; data?: string };

class BadRequest extends Error {}

function fromJson(body: unknown): Payload[] {
  if (!body || typeof body !== 'object' || !Array.isArray((body as { payloads?: unknown }).payloads))
    throw new BadRequest('expected a JSON object { "payloads": [ { "metadata": { … }, "data": "<base64>" } ] }');
  return ((body as { payloads: unknown[] }).payloads as unknown[]).map((p, i) => {
    if (!p || typeof p !== 'object') throw new BadRequest(`payloads[${i}]: expected an object with metadata and data`);
    const jp = p as JsonPayload;
    const metadata: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(jp.metadata ?? {})) {
      if (typeof v !== 'string') throw new BadRequest(`payloads[${i}].metadata.${k}: expected a base64 string`);
      metadata[k] = Buffer.from(v, 'base64');
    }
    if (jp.data !== undefined && typeof jp.data !== 'string') throw new BadRequest(`payloads[${i}].data: expected a base64 string`);
    return { metadata, data: Buffer.from(jp.data ?? '', 'base64') };
  });
}

function toJson(payloads: Payload[]): { payloads: JsonPayload[] } {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
      data: Buffer.from(p.data ?? []).toString('base64'),
    })),
  };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export async function startCodecServer(opts: CodecServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const origins = new Set(opts.uiOrigins.map((o) => o.replace(/\/+$/, '')));
  const want = opts.bearerToken !== undefined ? digest(`Bearer ${opts.bearerToken}`) : null;
  const app = new Hono();

  const cors = (c: Context) => {
    const origin = c.req.header('origin');
    if (!origin || !origins.has(origin)) return;
    c.header('Access-Control-Allow-Origin', origin);
    c.header('Access-Control-Allow-Credentials', 'true');
    c.header('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
    c.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
    c.header('Vary', 'Origin');
  };

  app.get('/healthz', (c) => c.text('ok'));
  app.options('/:op{encode|decode}', (c) => {
    cors(c);
    return c.body(null, 204);
  });
  app.post('/:op{encode|decode}', async (c) => {
    cors(c);
    const op = c.req.param('op') as 'encode' | 'decode';
    if (want) {
      const got = digest(c.req.header('authorization') ?? '');
      if (!timingSafeEqual(got, want)) {
        opts.logger?.warn({ op, from: c.req.header('origin') ?? null }, 'codec request refused: no or wrong bearer token');
        return c.json({ message: 'unauthorized: send Authorization: Bearer <the codec server token>' }, 401);
      }
    }
    const declared = Number(c.req.header('content-length') ?? 0);
    if (declared > MAX_BODY) return c.json({ message: `body of ${declared} bytes is over the ${MAX_BODY}-byte limit` }, 413);
    const raw = await c.req.text();
    if (Buffer.byteLength(raw) > MAX_BODY) return c.json({ message: `body is over the ${MAX_BODY}-byte limit` }, 413);
    let payloads: Payload[];
    try {
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        throw new BadRequest('the body is not JSON');
      }
      payloads = fromJson(body);
    } catch (err) {
      return c.json({ message: (err as Error).message }, 400);
    }
    try {
      const out = op === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
      return c.json(toJson(out));
    } catch (err) {
      opts.logger?.warn({ op, payloads: payloads.length, err: (err as Error).message }, 'codec request failed');
      return c.json({ message: (err as Error).message }, 422);
    }
  });

  const server = serve({ fetch: app.fetch, hostname: opts.listen.host, port: opts.listen.port });
  await new Promise<void>((res, rej) => {
    server.once('listening', res);
    server.once('error', rej);
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((res) => {
        const s = server as typeof server & { closeAllConnections?: () => void };
        server.close(() => res());
        s.closeAllConnections?.();
      }),
  };
}
