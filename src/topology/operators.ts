/**
 * The people who decide at checkpoints, and the console they decide in. An operator signs in to
 * the console with a password (only its scrypt hash is written here, by `switchyard operator add`)
 * or through an authenticating proxy's header; an operator with a `publicKey` can also sign
 * decisions with the CLI (`switchyard approve --key`). The console signs every decision it sends
 * with its own key (`signingKey`, a secret reference); the workflows verify those signatures with
 * the public keys written here, so the identity in a decision is the one that signed in.
 */
import { z } from 'zod';
import { address, duration, listen, name, secretRef } from './fields';

/** `scrypt$<N>$<r>$<p>$<salt, base64>$<hash, base64>`: what `switchyard operator add` writes. */
export const PASSWORD_HASH_RE = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
/** An Ed25519 public key: its 32 bytes in hex. */
export const PUBLIC_KEY_RE = /^[0-9a-f]{64}$/;

const publicKey = z
  .string({ error: 'expected an Ed25519 public key: 64 hex digits (printed by `switchyard operator keygen`)' })
  .regex(PUBLIC_KEY_RE, { error: 'expected an Ed25519 public key: 64 lowercase hex digits (printed by `switchyard operator keygen`)' });

export const operatorSchema = z
  .object({
    password: z
      .string({ error: 'expected a password hash written by `switchyard operator add`' })
      .regex(PASSWORD_HASH_RE, {
        error: 'expected a password hash written by `switchyard operator add` ("scrypt$…"); a password itself is never written here',
      })
      .optional(),
    /** Groups the operator belongs to; a checkpoint's approvers may name a group as "@<group>". */
    groups: z.array(name).default([]),
    /** The operator's own Ed25519 key, for decisions signed by the CLI (`switchyard approve --key`). */
    publicKey: publicKey.optional(),
  })
  .strict();
export type OperatorConfig = z.infer<typeof operatorSchema>;

export const consoleSchema = z
  .object({
    /** Where `switchyard console` listens (the --listen flag overrides it). */
    listen: listen.default('127.0.0.1:8180'),
    /** The console's address as people open it: the base of the links in notifications. */
    url: z.url({ error: 'expected the URL people open the console at, e.g. "https://switchyard.example.com"' }).optional(),
    /** The console's Ed25519 private key (PKCS#8 PEM, or 64 hex digits of seed) by reference. */
    signingKey: secretRef.optional(),
    /** The public half of `signingKey`: what the workflows verify the console's decisions with. */
    publicKey: publicKey.optional(),
    /**
     * Behind an authenticating proxy (oauth2-proxy and the like): the header that carries the
     * signed-in operator's name, believed only on connections from `proxies`.
     */
    trustedHeader: z
      .object({
        name: z.string().regex(/^[A-Za-z0-9-]+$/, { error: 'expected an HTTP header name, e.g. "X-Forwarded-User"' }),
        proxies: z.array(address).min(1, { error: 'expected the addresses of the proxies whose header is believed' }),
      })
      .strict()
      .optional(),
    /** How long a console session lasts without being used. */
    sessionIdle: duration.default('12h'),
  })
  .strict()
  .refine((c) => (c.signingKey === undefined) === (c.publicKey === undefined), {
    error: 'console.signingKey and console.publicKey go together (`switchyard operator keygen` prints both)',
    path: ['publicKey'],
  });
export type ConsoleConfig = z.infer<typeof consoleSchema>;

export const operatorsSchema = z.record(name, operatorSchema).default({});
export type Operators = z.infer<typeof operatorsSchema>;

/** The link base for notifications and prompts: the console's url, else its listen address. */
export function consoleUrl(c: ConsoleConfig | undefined): string | null {
  if (!c) return null;
  return (c.url ?? `http://${c.listen}`).replace(/\/+$/, '');
}
