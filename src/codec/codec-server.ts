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
import { bodyLimit } from 'hono/body-limit';

export interface CodecServerOptions {
  listen: { host: string; port: number };
  codec: PayloadCodec;
  uiOrigins: readonly string[];
  bearerToken?: string;
  logger?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

const MAX_BODY = 4 * 1024 * 1024;

type JsonPayload = { metadata: Record<string, string>; data: string };

class BadRequest extends Error {}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function bytes(v: unknown, where: string): Buffer {
  if (typeof v !== 'string') throw new BadRequest(`${where}: expected a base64 string`);
  if (!BASE64.test(v)) throw new BadRequest(`${where}: not base64`);
  return Buffer.from(v, 'base64');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Payloads from their proto3 JSON form: every bytes field (data, each metadata value) base64. */
function fromJson(body: unknown): Payload[] {
  if (!isObject(body) || !Array.isArray(body.payloads))
    throw new BadRequest('expected a JSON object { "payloads": [ { "metadata": { "<key>": "<base64>" }, "data": "<base64>" } ] }');
  return body.payloads.map((p: unknown, i) => {
    if (!isObject(p)) throw new BadRequest(`payloads[${i}]: expected an object with metadata and data`);
    if (p.metadata !== undefined && p.metadata !== null && !isObject(p.metadata))
      throw new BadRequest(`payloads[${i}].metadata: expected an object of base64 strings`);
    const metadata: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries((p.metadata as Record<string, unknown> | null | undefined) ?? {}))
      metadata[k] = bytes(v, `payloads[${i}].metadata.${k}`);
    const data = p.data === undefined || p.data === null ? Buffer.alloc(0) : bytes(p.data, `payloads[${i}].data`);
    return { metadata, data };
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

  // CORS first, so a refusal (401, 413, 400) reaches the UI's page readable too.
  app.use('*', async (c, next) => {
    cors(c);
    await next();
  });
  app.get('/healthz', (c) => c.text('ok'));
  app.options('/:op{encode|decode}', (c) => c.body(null, 204));
  app.post(
    '/:op{encode|decode}',
    async (c, next) => {
      if (want) {
        const got = digest(c.req.header('authorization') ?? '');
        if (!timingSafeEqual(got, want)) {
          opts.logger?.warn({ op: c.req.param('op'), origin: c.req.header('origin') ?? null }, 'codec request refused: no or wrong bearer token');
          return c.json({ message: 'unauthorized: send Authorization: Bearer <the codec server token>' }, 401);
        }
      }
      await next();
    },
    // Counts a chunked body as it arrives too, so an endless one is cut off at the limit.
    bodyLimit({ maxSize: MAX_BODY, onError: (c) => c.json({ message: `the body is over the ${MAX_BODY}-byte limit` }, 413) }),
    async (c) => {
      const op = c.req.param('op') as 'encode' | 'decode';
      let payloads: Payload[];
      try {
        let body: unknown;
        try {
          body = JSON.parse(await c.req.text());
        } catch {
          throw new BadRequest('the body is not JSON');
        }
        payloads = fromJson(body);
      } catch (err) {
        if (!(err instanceof BadRequest)) throw err;
        return c.json({ message: err.message }, 400);
      }
      try {
        const out = op === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
        return c.json(toJson(out));
      } catch (err) {
        // The codec's messages name key ids, never a payload's content.
        opts.logger?.warn(
          { op, payloads: payloads.length, namespace: c.req.header('x-namespace') ?? null, err: (err as Error).message },
          'codec request failed',
        );
        return c.json({ message: (err as Error).message }, 422);
      }
    },
  );

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
