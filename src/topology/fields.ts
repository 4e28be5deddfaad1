/**
 * The field types every part of the topology is written with: names, ports, addresses, paths,
 * counts, durations and secret references, each with the message a person gets when it is wrong.
 */
import { z } from 'zod';
import { DURATION_RE } from './duration';

export const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const name = z
  .string({ error: 'expected a name (lowercase letters, digits, "-" or "_")' })
  .regex(NAME_RE, { error: 'expected a name of lowercase letters, digits, "-" or "_", starting with a letter or digit' });

export const port = z
  .number({ error: 'expected a port number (an integer from 1 to 65535)' })
  .int({ error: 'expected a port number (an integer from 1 to 65535)' })
  .min(1, { error: 'expected a port number (an integer from 1 to 65535)' })
  .max(65535, { error: 'expected a port number (an integer from 1 to 65535)' });

export const address = z
  .string({ error: 'expected a host name or IP address' })
  .min(1, { error: 'expected a host name or IP address, got an empty string' })
  .regex(/^[A-Za-z0-9.:_-]+$/, { error: 'expected a host name or IP address (letters, digits, ".", ":", "-")' });

/** Where a server listens: host:port. */
export const listen = z
  .string({ error: 'expected host:port, e.g. "127.0.0.1:8180"' })
  .regex(/^[A-Za-z0-9.:_-]+:\d{1,5}$/, { error: 'expected host:port, e.g. "127.0.0.1:8180"' });

/** host:port split (the last colon: an IPv6 host keeps its own); null when it is not host:port. */
export function splitListen(text: string): { host: string; port: number } | null {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { host: m[1].replace(/^\[(.*)\]$/, '$1'), port } : null;
}

export const absPath = z.string({ error: 'expected an absolute path' }).regex(/^\//, { error: 'expected an absolute path (starting with "/")' });

export const positiveInt = z
  .number({ error: 'expected a positive integer' })
  .int({ error: 'expected a positive integer' })
  .positive({ error: 'expected a positive integer' });
export const nonNegativeInt = z
  .number({ error: 'expected an integer >= 0' })
  .int({ error: 'expected an integer >= 0' })
  .min(0, { error: 'expected an integer >= 0' });

export const duration = z
  .string({ error: 'expected a duration such as "90s", "15m", "6h" or "14d"' })
  .regex(DURATION_RE, { error: 'expected a duration such as "90s", "15m", "6h" or "14d"' });

/** A reference to a secret; the value itself never appears in config, inputs or history. */
export const secretRef = z
  .object(
    {
      env: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' })
        .optional(),
      file: absPath.optional(),
    },
    {
      error: (iss) =>
        typeof iss.input === 'string'
          ? 'inline secrets are not allowed: write { env: VARIABLE } or { file: /absolute/path } so the value never reaches workflow history'
          : 'expected a secret reference { env: VARIABLE } or { file: /absolute/path }',
    },
  )
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), {
    error: 'a secret reference names exactly one of "env" or "file"',
  });
export type SecretRef = z.infer<typeof secretRef>;
