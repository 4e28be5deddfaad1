/**
 * PostgreSQL connections kept open between the worker's reads of a node (the watch's probe every
 * interval: each node's status, the write probe, the lag), so that 200 watched clusters do not
 * each open five connections, with their SCRAM login and a new server process, every 10 s.
 *
 * Reuse never weakens a read:
 * - Only reads opt in (status, the write probe, lag: withPgClient's `reuse`); actions always
 *   connect afresh. A connection is keyed by everything it was opened with (address, port, user,
 *   database, a hash of the password, the timeouts): a rotated password opens a new one.
 * - A read on a pooled connection that fails in any way, or takes longer than `attemptMs`, is
 *   thrown away with its connection and done again on a fresh connection, exactly as without the
 *   pool: a node that went down, was fenced or was restarted is seen as such by that fresh
 *   connection, never reported from a dead one. (The reads are safe to repeat: the write probe is
 *   an upsert of one heartbeat row.)
 * - A connection is reused only while `maxAgeMs` young and not seen to close; idle ones close
 *   after `idleMs`, and no more than `maxIdle` per key are kept.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { PgClientLike } from '../runtime';

export interface PgPoolOptions {
  idleMs: number;
  maxAgeMs: number;
  /** Idle connections kept per key (more at once are closed after their read). */
  maxIdle: number;
  /** A read on a pooled connection that takes longer is given up and done on a fresh one. */
  attemptMs: number;
}

export const DEFAULT_PG_POOL: PgPoolOptions = { idleMs: 60_000, maxAgeMs: 10 * 60_000, maxIdle: 4, attemptMs: 2_000 };

interface Idle {
  client: PgClientLike;
  openedAt: number;
  timer: NodeJS.Timeout;
}

/** A client the pool took in, with when it was opened and whether it was seen to close. */
interface Known {
  openedAt: number;
  closed: boolean;
}

export class PgPool {
  private readonly idle = new Map<string, Idle[]>();
  private readonly known = new WeakMap<PgClientLike, Known>();
  private closedAll = false;
  /** Reads that failed on a pooled connection and were done again on a fresh one. */
  retried = 0;

  constructor(
    readonly opts: PgPoolOptions = DEFAULT_PG_POOL,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Run `fn` on an idle pooled connection for `key` when there is one (given up after attemptMs,
   * and on any error, in favour of the fresh path), else on a fresh connection from `fresh`,
   * which is handed back to the pool only when `fn` succeeded on it.
   */
  async run<T>(key: string, fresh: () => Promise<PgClientLike>, fn: (client: PgClientLike) => Promise<T>): Promise<T> {
    const pooled = this.take(key);
    if (pooled) {
      const r = await this.attempt(pooled, fn);
      if (r.ok) {
        this.put(key, pooled);
        return r.value;
      }
      this.retried += 1;
      discard(pooled);
    }
    const client = await fresh();
    let ok = false;
    try {
      const value = await fn(client);
      ok = true;
      return value;
    } finally {
      if (ok) this.adopt(key, client);
      else discard(client);
    }
  }

  /** Every idle connection, now (worker shutdown); later reads connect afresh and close after. */
  close(): void {
    this.closedAll = true;
    for (const list of this.idle.values()) for (const i of list) this.dropIdle(i);
    this.idle.clear();
  }

  /** Idle connections per key, or in all. */
  size(key?: string): number {
    if (key) return this.idle.get(key)?.length ?? 0;
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  private async attempt<T>(client: PgClientLike, fn: (c: PgClientLike) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
    let timer: NodeJS.Timeout | undefined;
    const run = fn(client).then((value) => ({ ok: true as const, value }));
    const late = new Promise<{ ok: false }>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false }), this.opts.attemptMs);
    });
    try {
      return await Promise.race([run.catch(() => ({ ok: false as const })), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private take(key: string): PgClientLike | null {
    const list = this.idle.get(key);
    while (list?.length) {
      const i = list.pop()!;
      clearTimeout(i.timer);
      if (!list.length) this.idle.delete(key);
      const k = this.known.get(i.client);
      if (!k?.closed && this.now() - i.openedAt < this.opts.maxAgeMs) return i.client;
      discard(i.client);
    }
    return null;
  }

  /** A fresh connection that served its read: watched for closing, then kept. */
  private adopt(key: string, client: PgClientLike): void {
    if (!this.known.has(client)) {
      const k: Known = { openedAt: this.now(), closed: false };
      this.known.set(client, k);
      client.on?.('end', () => void (k.closed = true));
      client.on?.('error', () => void (k.closed = true));
    }
    this.put(key, client);
  }

  private put(key: string, client: PgClientLike): void {
    const k = this.known.get(client);
    const list = this.idle.get(key) ?? [];
    if (this.closedAll || !k || k.closed || this.now() - k.openedAt >= this.opts.maxAgeMs || list.length >= this.opts.maxIdle) return discard(client);
    const i: Idle = { client, openedAt: k.openedAt, timer: setTimeout(() => this.expire(key, i), this.opts.idleMs) };
    i.timer.unref();
    list.push(i);
    this.idle.set(key, list);
  }

  private expire(key: string, i: Idle): void {
    const rest = (this.idle.get(key) ?? []).filter((x) => x !== i);
    if (rest.length) this.idle.set(key, rest);
    else this.idle.delete(key);
    this.dropIdle(i);
  }

  private dropIdle(i: Idle): void {
    clearTimeout(i.timer);
    discard(i.client);
  }
}

function discard(client: PgClientLike): void {
  void client.end().catch(() => undefined);
}

/** Everything a connection was opened with; the password only as a hash. */
export function pgPoolKey(cfg: pg.ClientConfig): string {
  const pw = typeof cfg.password === 'string' ? createHash('sha256').update(cfg.password).digest('hex') : '';
  return [cfg.host, cfg.port, cfg.user, cfg.database, pw, cfg.connectionTimeoutMillis, cfg.statement_timeout, cfg.lock_timeout, cfg.query_timeout].join('|');
}
