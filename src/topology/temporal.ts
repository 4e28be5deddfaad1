/**
 * How switchyard's processes reach Temporal and what they show of themselves: the frontend,
 * TLS (server CA, client certificate and key, server name) or an API key, the payload codec's
 * keys (AES-256-GCM, several for rotation) and its codec server, and the worker's metrics
 * endpoint. Every secret is a reference; command-line flags and the temporal CLI's environment
 * variables override what is written here (src/temporal-access.ts).
 */
import { z } from 'zod';
import { listen, name, secretRef } from './fields';

const tlsSchema = z
  .object({
    /** The CA that signed the server's certificate (PEM); absent: the system's roots. */
    serverCa: secretRef.optional(),
    /** The client certificate (PEM) for mTLS, with its key. */
    clientCert: secretRef.optional(),
    clientKey: secretRef.optional(),
    /** The name the server's certificate is checked against, when it is not the address's host. */
    serverName: z.string().min(1, { error: 'expected the host name in the server certificate' }).optional(),
  })
  .strict()
  .refine((t) => (t.clientCert === undefined) === (t.clientKey === undefined), {
    error: 'temporal.tls.clientCert and temporal.tls.clientKey go together (mTLS needs both)',
    path: ['clientKey'],
  });

const codecKeySchema = z
  .object({
    /** Written into every payload it encrypts; never reuse an id for another key. */
    id: name,
    /** 32 bytes: 64 hex digits or base64 (`openssl rand -hex 32`). */
    key: secretRef,
  })
  .strict();

const codecSchema = z
  .object({
    /** Oldest first: the last one encrypts (unless encryptWith says otherwise), any of them decrypts. */
    keys: z.array(codecKeySchema).min(1, { error: 'expected at least one key: [{ id: key-1, key: { file: /path } }]' }),
    encryptWith: name.optional(),
    /** `switchyard codec-server`, for the Temporal Web UI and `temporal --codec-endpoint`. */
    server: z
      .object({
        listen: listen.default('127.0.0.1:8888'),
        /** The Web UI's origins (scheme://host:port): the only ones the browser may call it from. */
        uiOrigins: z.array(z.url({ error: 'expected an origin such as "http://127.0.0.1:8233"' })).default([]),
        /** Asked of every /encode and /decode call as `Authorization: Bearer …`. */
        token: secretRef.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const ids = c.keys.map((k) => k.id);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: ['keys', i, 'id'], message: `key id "${id}" appears twice` });
    });
    if (c.encryptWith !== undefined && !ids.includes(c.encryptWith))
      ctx.addIssue({
        code: 'custom',
        path: ['encryptWith'],
        message: `no key with id "${c.encryptWith}" (the keys are ${ids.map((i) => `"${i}"`).join(', ')})`,
      });
  });

export const temporalSchema = z
  .object({
    /** host:port of the frontend (the --address flag and TEMPORAL_ADDRESS override it). */
    address: z
      .string()
      .regex(/^[A-Za-z0-9.:_\-[\]]+:\d{1,5}$/, { error: 'expected host:port of the Temporal frontend, e.g. "temporal.example:7233"' })
      .optional(),
    namespace: z.string().min(1).optional(),
    /** Present: connect with TLS. */
    tls: tlsSchema.optional(),
    /** Temporal Cloud or a gateway's API key, sent as a bearer token (implies TLS unless tls is set explicitly). */
    apiKey: secretRef.optional(),
    /** Present: every payload switchyard writes is encrypted. */
    codec: codecSchema.optional(),
  })
  .strict();
export type TemporalConfig = z.infer<typeof temporalSchema>;
export type CodecConfig = z.infer<typeof codecSchema>;

export const metricsSchema = z
  .object({
    /** Where the worker serves /metrics for Prometheus (the --metrics flag and SWITCHYARD_METRICS override it). */
    listen,
  })
  .strict();
export type MetricsConfig = z.infer<typeof metricsSchema>;
