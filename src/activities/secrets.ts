/**
 * Secrets inside an activity: resolved from an environment variable or a file when the call needs
 * them, and scrubbed (every value resolved in the call) from whatever the call returns or throws.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { SecretRef } from '../topology/schema';
import { configError } from './resolver';
import { describeRef, readSecret, SecretReadError } from '../secret-reader';

export { describeRef };

/**
 * The default secret reader: an environment variable or a file, trailing newline removed
 * (src/secret-reader.ts), failing as a configuration error. Errors name the reference, never a value.
 */
export async function defaultSecret(ref: SecretRef): Promise<string> {
  try {
    return await readSecret(ref);
  } catch (err) {
    throw configError(err instanceof SecretReadError ? err.message : `secret ${describeRef(ref)}: ${String(err)}`);
  }
}

/** Shortest secret value that is scrubbed from text (shorter ones would mangle ordinary words). */
const MIN_REDACT = 4;

/**
 * One activity call's secrets: resolves references through the injected reader and remembers
 * the values so that results and errors can be scrubbed before they leave the activity.
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

  /** The text with every value resolved in this call replaced by ***. */
  redact(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join('***');
    return out;
  }

  /** Deep copy of a JSON value with every string scrubbed. */
  redactJson<T>(value: T): T {
    if (this.values.size === 0) return value;
    return this.scrub(value, new Map()) as T;
  }

  /**
   * The error with every value resolved in this call scrubbed from it: its message and stack, an
   * ApplicationFailure's details (deep), its cause chain (each cause the same way) and any other
   * field of its own. The copy keeps the error's class and fields (an ApplicationFailure's type,
   * nonRetryable, nextRetryDelay, category; an error's name and code); a copied TemporalFailure
   * drops `failure`, the original proto the SDK would otherwise send instead of the scrubbed
   * fields. An error that mentions no secret is returned as is; a thrown string is scrubbed.
   */
  redactError(err: unknown): unknown {
    if (this.values.size === 0 || !this.mentions(err, new Set())) return err;
    return this.scrub(err, new Map());
  }

  /** Does any string in the value (or in an error's own fields, its cause, its details) hold a secret? */
  private mentions(v: unknown, seen: Set<object>): boolean {
    if (typeof v === 'string') return [...this.values].some((s) => v.includes(s));
    if (v === null || typeof v !== 'object' || seen.has(v) || kept(v)) return false;
    seen.add(v);
    if (v instanceof Error) return Reflect.ownKeys(v).some((k) => this.mentions(ownValue(v, k), seen));
    return Object.values(v).some((x) => this.mentions(x, seen));
  }

  /** The copy of a value with every string scrubbed; `done` maps what was copied to its copy (cycles). */
  private scrub(v: unknown, done: Map<object, unknown>): unknown {
    if (typeof v === 'string') return this.redact(v);
    if (v === null || typeof v !== 'object' || kept(v)) return v;
    if (done.has(v)) return done.get(v);
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      done.set(v, out);
      for (const x of v) out.push(this.scrub(x, done));
      return out;
    }
    if (v instanceof Error) {
      const out = Object.create(Object.getPrototypeOf(v) as object) as Error;
      done.set(v, out);
      for (const k of Reflect.ownKeys(v)) {
        if (k === 'failure') continue;
        const d = Object.getOwnPropertyDescriptor(v, k);
        Object.defineProperty(out, k, { value: this.scrub(ownValue(v, k), done), writable: true, enumerable: d?.enumerable ?? false, configurable: true });
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    done.set(v, out);
    for (const [k, x] of Object.entries(v)) out[k] = this.scrub(x, done);
    return out;
  }
}

/** Objects left as they are: binary data and dates hold no text to scrub (and would not survive a copy). */
function kept(v: object): boolean {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date;
}

/** An own field's value, also when it is an accessor (some errors define `stack` so). */
function ownValue(v: object, k: string | symbol): unknown {
  const d = Object.getOwnPropertyDescriptor(v, k);
  return d && 'value' in d ? d.value : Reflect.get(v, k);
}
