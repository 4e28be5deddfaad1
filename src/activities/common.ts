/**
 * What every activity module shares: resolving names against the topology (unknown names are
 * non-retryable ConfigErrors that list what exists), resolving secrets inside the activity, keeping
 * secret values out of results and errors, heartbeats and logging that work with or without an
 * activity context.
 */
import { readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, DbNodeConfig, HostConfig, SecretRef, SiteConfig, Topology, TrafficDriverConfig } from '../topology/schema';
import { Errors } from '../contract/errors';

export function configError(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, Errors.ConfigError);
}

function listKnown(known: string[]): string {
  return known.length ? known.map((k) => `"${k}"`).join(', ') : 'none';
}

function lookup<T>(kind: string, name: string, record: Record<string, T>, where: string): T {
  if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(record, name)) {
    throw configError(`unknown ${kind} ${JSON.stringify(name)}${where}; known: ${listKnown(Object.keys(record))}`);
  }
  return record[name];
}

/** Name lookups against one topology snapshot (taken once per activity call). */
export class Resolver {
  constructor(readonly topology: Topology) {}

  cluster(name: string): ClusterConfig {
    return lookup('cluster', name, this.topology.clusters, '');
  }
  node(cluster: string, name: string): DbNodeConfig {
    return lookup('database node', name, this.cluster(cluster).postgres.nodes, ` in cluster "${cluster}"`);
  }
  host(cluster: string, name: string): HostConfig {
    return lookup('host', name, this.cluster(cluster).hosts, ` in cluster "${cluster}"`);
  }
  site(cluster: string, name: string): SiteConfig {
    return lookup('site', name, this.cluster(cluster).sites, ` in cluster "${cluster}"`);
  }
  driver(cluster: string, name: string): TrafficDriverConfig {
    const drivers = this.cluster(cluster).traffic;
    const d = drivers.find((x) => x.name === name);
    if (!d) throw configError(`unknown traffic driver ${JSON.stringify(name)} in cluster "${cluster}"; known: ${listKnown(drivers.map((x) => x.name))}`);
    return d;
  }
  /** The database node of a site, as [name, config]. */
  nodeOfSite(cluster: string, site: string): [string, DbNodeConfig] {
    this.site(cluster, site);
    const entry = Object.entries(this.cluster(cluster).postgres.nodes).find(([, n]) => n.site === site);
    if (!entry) throw configError(`site "${site}" of cluster "${cluster}" has no database node`);
    return entry;
  }
}

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

export function inActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeat when running as an activity; a no-op for plain function calls (unit tests). */
export function heartbeat(details?: unknown): void {
  inActivity()?.heartbeat(details);
}

/** The activity's cancellation signal, if any. */
export function cancellationSignal(): AbortSignal | undefined {
  return inActivity()?.cancellationSignal;
}

/** For one HTTP request: aborted at its timeout, or when the activity is cancelled. */
export function requestSignal(timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  const cancelled = cancellationSignal();
  return cancelled ? AbortSignal.any([timeout, cancelled]) : timeout;
}

export interface ActivityLogger {
  info(message: string, attrs?: Record<string, unknown>): void;
  warn(message: string, attrs?: Record<string, unknown>): void;
}

/** Logs through the activity context's logger (which carries workflow id and activity info). */
export function contextLogger(fallback?: ActivityLogger): ActivityLogger {
  return {
    info: (m, a) => {
      const ctx = inActivity();
      if (ctx) ctx.log.info(m, a);
      else fallback?.info(m, a);
    },
    warn: (m, a) => {
      const ctx = inActivity();
      if (ctx) ctx.log.warn(m, a);
      else fallback?.warn(m, a);
    },
  };
}

/** Who is acting, for audit rows: the workflow id when running as an activity. */
export function actor(): string {
  const ctx = inActivity();
  const wf = ctx?.info.workflowExecution?.workflowId;
  return wf ? `switchyard:${wf}` : 'switchyard';
}

export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorMessage).join('; ');
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const base = err.message || err.name;
    if (cause instanceof Error && cause.message && !base.includes(cause.message)) return `${base}: ${errorMessage(cause)}`;
    return base;
  }
  return String(err);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Poll `read` until `done` holds or `timeoutMs` passes; returns the last value read.
 * Heartbeats on every round so a long verification stays alive.
 */
export async function pollUntil<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, intervalMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    heartbeat();
    await sleep(intervalMs);
  }
}

/** An integer input within bounds, or the fallback when it is absent; anything else is a ConfigError. */
export function checkedInt(v: unknown, name: string, fallback: number | undefined, min: number, max: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw configError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}
