/**
 * The one client every tool is measured with: an INSERT of a sequenced row every 20 ms on
 * whichever node accepts writes. After a failed write it tries the last node that took one
 * first, then the others in order, each with a 1 s connect timeout; a node that connects but
 * refuses the write (a standby: read-only) is passed over. Each acknowledged write is kept with
 * its time, its row id and the node that took it.
 */
import pg from 'pg';
import { sleep } from './procs';

export interface Ack {
  at: number;
  id: number;
  node: string;
  /** The server's pg_postmaster_start_time(): tells a PostgreSQL restarted in place from the one that was killed. */
  server: string;
}

export interface WriterTarget {
  name: string;
  cfg: pg.ClientConfig;
}

export interface Writer {
  acks: Ack[];
  /** The first ack at or after `fromMs` that `match` accepts (any when absent), waiting up to `waitMs` for it. */
  firstAfter(fromMs: number, waitMs: number, match?: (a: Ack) => boolean): Promise<Ack | null>;
  stop(): Promise<void>;
}

export const WRITE_EVERY_MS = 20;
export const CONNECT_TIMEOUT_MS = 1000;
/** A write that takes longer than this counts as failed (a node stopping mid-query must not hold the writer). */
export const QUERY_TIMEOUT_MS = 1000;

export function startWriter(targets: WriterTarget[], note: string): Writer {
  const acks: Ack[] = [];
  let stopped = false;
  let seq = 0;
  let current: { t: WriterTarget; c: pg.Client } | null = null;
  let lastGood = targets[0];

  const connect = async (t: WriterTarget): Promise<pg.Client | null> => {
    const c = new pg.Client({ ...t.cfg, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS, application_name: 'bench-peers-writer' });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return c;
    } catch {
      void c.end().catch(() => undefined);
      return null;
    }
  };
  const insert = async (c: pg.Client, t: WriterTarget): Promise<boolean> => {
    seq += 1;
    try {
      const r = await c.query<{ id: string; pst: string }>(
        `INSERT INTO public.sandbox_rows (note) VALUES ($1) RETURNING id, pg_postmaster_start_time()::text AS pst`,
        [`${note} ${seq}`],
      );
      acks.push({ at: Date.now(), id: Number(r.rows[0].id), node: t.name, server: `${t.name}@${r.rows[0].pst}` });
      lastGood = t;
      return true;
    } catch {
      return false;
    }
  };
  const drop = () => {
    const dead = current?.c;
    current = null;
    void dead?.end().catch(() => undefined);
  };

  const running = (async () => {
    while (!stopped) {
      const t0 = Date.now();
      if (current && !(await insert(current.c, current.t))) drop();
      else if (!current) {
        for (const t of [lastGood, ...targets.filter((x) => x !== lastGood)]) {
          if (stopped) break;
          const c = await connect(t);
          if (!c) continue;
          current = { t, c };
          if (await insert(c, t)) break;
          drop();
        }
      }
      await sleep(Math.max(0, WRITE_EVERY_MS - (Date.now() - t0)));
    }
    drop();
  })();

  return {
    acks,
    async firstAfter(fromMs, waitMs, match) {
      for (const end = Date.now() + waitMs; ; await sleep(20)) {
        const a = acks.find((x) => x.at >= fromMs && (!match || match(x)));
        if (a) return a;
        if (Date.now() > end) return null;
      }
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/** Which of `ids` the node has (null when it cannot be read). */
export async function presentIds(cfg: pg.ClientConfig, ids: number[]): Promise<Set<number> | null> {
  const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<{ id: string }>(`SELECT id FROM public.sandbox_rows WHERE id = ANY($1::bigint[])`, [ids]);
    return new Set(r.rows.map((x) => Number(x.id)));
  } catch {
    return null;
  } finally {
    await c.end().catch(() => undefined);
  }
}
