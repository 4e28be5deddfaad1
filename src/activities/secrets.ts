/**
 * Secrets inside an activity: resolved from an environment variable or a file when the call needs
 * them, and scrubbed (every value resolved in the call) from whatever the call returns or throws.
 */
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { SecretRef } from '../topology/schema';
import { configError } from './resolver';

export function describeRef(ref: SecretRef): string {
  return ref.env !== undefined ? `{ env: ${ref.env} }` : `{ file: ${ref.file} }`;
}

/**
 * The default secret reader: an environment variable or a file, trailing newline removed.
 * Errors name the reference, never a value.
 */
export async function defaultSecret(ref: SecretRef): Promise<string> {
  if (ref.env !== undefined) {
    const v = process.env[ref.env];
    if (v === undefined || v === '') throw configError(`secret ${describeRef(ref)}: environment variable ${ref.env} is not set in the worker's environment`);
    return v.replace(/\r?\n$/, '');
  }
  if (ref.file !== undefined) {
    let text: string;
    try {
      text = await readFile(ref.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw configError(`secret ${describeRef(ref)}: cannot read the file (${code})`);
    }
    return text.replace(/\r?\n$/, '');
  }
  throw configError('secret reference names neither env nor file');
}

/** Shortest secret value that is scrubbed from text (shorter ones would mangle ordinary words). */
const MIN_REDACT = 4;

/**
 * One activity call's secrets: resolves references through the injected reader and remembers
 * the values so that results and error messages can be scrubbed before they leave the activity.
 */
export class SecretScope {
  private readonly values = new Set<string>();
  constructor(private readonly reader: (ref: SecretRef) => Promise<string>) {}

  async get(ref: SecretRef, what: string): Promise<string> {
    let v: string;
    try {
      v = await this.reader(ref);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      // A custom reader's message may quote the value; report the reference and the what only.
      throw configError(`secret ${describeRef(ref)} (${what}) could not be read`);
    }
    if (v.length >= MIN_REDACT) this.values.add(v);
    return v;
  }

  redact(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join('***');
    return out;
  }

  /** Deep copy of a JSON value with every string scrubbed. */
  redactJson<T>(value: T): T {
    if (this.values.size === 0) return value;
    const walk = (v: unknown): unknown => {
      if (typeof v === 'string') return this.redact(v);
      if (Array.isArray(v)) return v.map(walk);
      if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
      return v;
    };
    return walk(value) as T;
  }

  /** The error with its message scrubbed, keeping ApplicationFailure type and retryability. */
  redactError(err: unknown): unknown {
    if (!(err instanceof Error) || this.values.size === 0) return err;
    const msg = this.redact(err.message);
    if (msg === err.message) return err;
    if (err instanceof ApplicationFailure) {
      return ApplicationFailure.create({ message: msg, type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? undefined });
    }
    const e = new Error(msg);
    e.name = err.name;
    return e;
  }
}
