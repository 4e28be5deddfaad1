/**
 * The split-brain probe of the fault matrix (issue 11): while a runbook runs and after it, one
 * loop per database node writes a row on that node directly (not through any traffic driver)
 * every `intervalMs`, and another loop opens a new connection through the front every
 * `frontIntervalMs` and records which node answered and whether it takes writes.
 *
 * A "moment with two writable primaries" is an interval of `intervalMs` in which both nodes
 * acknowledged a write. A front connection is "misrouted" when it reached a node that is not the
 * primary at that time (a read-only node, or the old primary once the new one was promoted).
 * Each loop bounds every call (connect and query timeouts well under a second), so a frozen node
 * cannot stall the probe.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Stage } from './stage';

export interface FrontSample {
  at: number;
  node: string | null;
  /** The connection took a write (false: read-only, a standby). */
  writable: boolean;
}

export interface SplitReport {
  /** Acknowledged writes per node: their times (ms since the epoch). */
  acks: Record<string, number[]>;
  /** Start of each interval in which both nodes acknowledged a write. */
  bothWritable: number[];
  front: FrontSample[];
  startedAt: number;
  endedAt: number;
}

export interface SplitProbe {
  stop(): Promise<SplitReport>;
}

const TABLE = 'public.split_probe';

/** The probe's table, made on the primary before the probe starts (it reaches the standby by replication). */
export async function prepareSplitProbe(st: Stage, primary: string): Promise<void> {
  // Idempotent, so tried up to four times: while several sandboxes start at once one query can time out.
  for (let attempt = 1; ; attempt++) {
    try {
      await st.nodeQuery(primary, `CREATE TABLE IF NOT EXISTS ${TABLE} (id bigserial PRIMARY KEY, node text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
      return;
    } catch (err) {
      if (attempt >= 4) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export function startSplitProbe(st: Stage, opts: { intervalMs?: number; frontIntervalMs?: number } = {}): SplitProbe {
  const interval = opts.intervalMs ?? 50;
  const frontInterval = opts.frontIntervalMs ?? 100;
  const nodes = Object.keys(st.cluster.postgres.nodes);
  const acks: Record<string, number[]> = Object.fromEntries(nodes.map((n) => [n, []]));
  const front: FrontSample[] = [];
  const startedAt = Date.now();
  let stopping = false;
  const password = (ref: { file?: string } | undefined) => (ref?.file ? readFileSync(ref.file, 'utf8').trim() : undefined);
  const base = {
    user: st.cluster.postgres.user,
    database: st.cluster.postgres.database,
    password: password(st.cluster.postgres.password),
    connectionTimeoutMillis: 400,
    query_timeout: 400,
    statement_timeout: 300,
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const byAddress = new Map(nodes.map((n) => [st.cluster.postgres.nodes[n].host, n]));

  const nodeLoop = async (node: string) => {
    const n = st.cluster.postgres.nodes[node];
    let client: pg.Client | null = null;
    while (!stopping) {
      const t0 = Date.now();
      try {
        if (!client) {
          client = new pg.Client({ ...base, host: n.host, port: n.port, application_name: 'split-probe' });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query(`INSERT INTO ${TABLE} (node) VALUES ($1)`, [node]);
        acks[node].push(Date.now());
      } catch (err) {
        // A standby refuses the write (read-only transaction) on a connection that is fine: kept,
        // so it takes the next write the moment it is promoted. Anything else: a new connection.
        if ((err as { code?: string }).code !== '25006') {
          const c = client;
          client = null;
          void c?.end().catch(() => undefined);
        }
      }
      await sleep(Math.max(0, interval - (Date.now() - t0)));
    }
    await client?.end().catch(() => undefined);
  };

  const frontLoop = async () => {
    const f = st.cluster.traffic.find((d) => d.kind === 'haproxy');
    if (!f || f.kind !== 'haproxy') return;
    while (!stopping) {
      const t0 = Date.now();
      const c = new pg.Client({ ...base, host: f.listen.address, port: f.listen.port, application_name: 'split-probe-front' });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const [r] = (await c.query(`SELECT host(inet_server_addr()) AS a, pg_is_in_recovery() AS ro`)).rows as { a: string; ro: boolean }[];
        front.push({ at: t0, node: byAddress.get(r.a) ?? r.a, writable: r.ro === false });
      } catch {
        /* no connection through the front: nothing was routed */
      } finally {
        void c.end().catch(() => undefined);
      }
      await sleep(Math.max(0, frontInterval - (Date.now() - t0)));
    }
  };

  const loops = [...nodes.map(nodeLoop), frontLoop()];
  return {
    async stop(): Promise<SplitReport> {
      stopping = true;
      await Promise.all(loops);
      const endedAt = Date.now();
      const buckets = nodes.map((n) => new Set(acks[n].map((t) => Math.floor(t / interval))));
      const both = [...buckets[0]]
        .filter((b) => buckets.slice(1).every((s) => s.has(b)))
        .sort((a, b) => a - b)
        .map((b) => b * interval);
      return { acks, bothWritable: both, front, startedAt, endedAt };
    },
  };
}

/** Front samples that reached a node that was not the primary at that time: `primaryAt(t)` says which was. */
export function misrouted(r: SplitReport, primaryAt: (t: number) => string): FrontSample[] {
  return r.front.filter((s) => !s.writable || s.node !== primaryAt(s.at));
}
