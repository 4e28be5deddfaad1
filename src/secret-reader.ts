/**
 * Reading a secret reference ({ env } or { file }) in a switchyard process: the worker's
 * activities (through src/activities/secrets.ts, which adds their error type), the CLI, the
 * console and the codec server. Errors name the reference, never a value.
 */
import { readFile } from 'node:fs/promises';
import type { SecretRef } from './topology/fields';

export function describeRef(ref: SecretRef): string {
  return ref.env !== undefined ? `{ env: ${ref.env} }` : `{ file: ${ref.file} }`;
}

export class SecretReadError extends Error {}

/** The value, trailing newline removed. `what` says what it is for, in the error. */
export async function readSecret(ref: SecretRef, what?: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const of = `secret ${describeRef(ref)}${what ? ` (${what})` : ''}`;
  if (ref.env !== undefined) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new SecretReadError(`${of}: environment variable ${ref.env} is not set`);
    return v.replace(/\r?\n$/, '');
  }
  if (ref.file !== undefined) {
    let text: string;
    try {
      text = await readFile(ref.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new SecretReadError(`${of}: cannot read the file (${code})`);
    }
    return text.replace(/\r?\n$/, '');
  }
  throw new SecretReadError(`${of}: names neither env nor file`);
}
