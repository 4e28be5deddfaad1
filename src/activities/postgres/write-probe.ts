/**
 * The write probe: one real write on the node believed to be primary (a refusal is data), and the
 * loop that measures how long writes were refused during a switchover by probing every node
 * until the expected one takes a write.
 */
import { actor, errorMessage, heartbeat, sleep } from '../activity-context';
import { checkedInt } from '../resolver';
import { Runtime, type Call } from '../runtime';
import type { PgWriteProbe, WriteProbeSummary } from '../../contract/observations';
import { throwIfCancelled } from '../ssh/exec';
import { withPgClient } from './connect';
import { nodeWhere, pgActionError } from './shared';

const PROBE_TIMEOUT_MS = 1_000;

const PROBE_SQL = [
  `CREATE SCHEMA IF NOT EXISTS switchyard`,
  `CREATE TABLE IF NOT EXISTS switchyard.heartbeat (node text PRIMARY KEY, at timestamptz NOT NULL, by text NOT NULL)`,
];

export interface WriteProbeLoopInput {
  cluster: string;
  /** Between the starts of two rounds (default 100). */
  intervalMs?: number;
  /** The node writes are expected to move to: the loop ends once it takes a write after a refusal. */
  expectNode: string;
  maxSeconds: number;
}

/**
 * A real write on the node believed to be primary: upsert one row of switchyard.heartbeat and
 * return the WAL position after commit. A standby or read-only node is refused (ok:false).
 */
export async function writeProbe(rt: Runtime, call: Call, cluster: string, node: string, opts: { reuse?: boolean } = {}): Promise<PgWriteProbe> {
  const where = nodeWhere(node, call.top.node(cluster, node));
  try {
    return await withPgClient(
      rt,
      call,
      cluster,
      node,
      async (client) => {
        const [s] = (await client.query(`SELECT pg_is_in_recovery() AS rec, current_setting('default_transaction_read_only') AS ro`)).rows;
        if (s.rec === true) return { node, ok: false, detail: `${where} is in recovery (a standby): refusing to write` };
        if (s.ro === 'on') return { node, ok: false, detail: `${where} has default_transaction_read_only = on: refusing to write` };
        const at = rt.now().toISOString();
        await client.query('BEGIN');
        try {
          // The probe asks "does this node take writes", not "is a synchronous standby there".
          await client.query(`SET LOCAL synchronous_commit = local`);
          for (const sql of PROBE_SQL) await client.query(sql);
          await client.query(
            `INSERT INTO switchyard.heartbeat (node, at, by) VALUES ($1, $2, $3)
           ON CONFLICT (node) DO UPDATE SET at = excluded.at, by = excluded.by`,
            [node, at, actor()],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          // 25006: read-only transaction (e.g. recovery began between the check and the write).
          if ((err as { code?: string }).code === '25006') return { node, ok: false, detail: `${where} refused the write: ${errorMessage(err)}` };
          throw err;
        }
        const [l] = (await client.query(`SELECT pg_current_wal_lsn()::text AS lsn`)).rows;
        return { node, ok: true, lsn: String(l.lsn), detail: `wrote switchyard.heartbeat row for ${node} at ${at}` };
      },
      opts,
    );
  } catch (err) {
    throw pgActionError(err, `write probe on ${where} of cluster "${cluster}"`);
  }
}

export function writeProbeActivities(rt: Runtime) {
  /** The write probe of writeProbeLoop, with 1 s connect and statement timeouts. */
  const probeRt = new Runtime({ ...rt.deps, timeouts: { ...rt.timeouts, pgConnectMs: PROBE_TIMEOUT_MS, pgStatementMs: PROBE_TIMEOUT_MS } });

  return {
    /**
     * A real write on the node believed to be primary: upsert one row of switchyard.heartbeat and
     * return the WAL position after commit. A standby or read-only node is refused (ok:false).
     */
    pgWriteProbe: rt.activity((input: { cluster: string; node: string }, call) => writeProbe(rt, call, input.cluster, input.node, { reuse: true })),

    /**
     * Measure how long writes are refused: every intervalMs one write probe (pgWriteProbe's write,
     * 1 s connect and statement timeouts) on whichever node takes it, the last one that did first.
     * Ends when a write was refused and later taken by expectNode, or after maxSeconds. Refusals
     * are data: it never throws for them.
     */
    writeProbeLoop: rt.activity(async (input: WriteProbeLoopInput, call): Promise<WriteProbeSummary> => {
      const c = call.top.cluster(input.cluster);
      call.top.node(input.cluster, input.expectNode);
      const intervalMs = checkedInt(input.intervalMs, 'intervalMs', 100, 10, 60_000);
      const maxMs = checkedInt(input.maxSeconds, 'maxSeconds', undefined, 1, 86400) * 1000;
      const nodes = Object.keys(c.postgres.nodes);
      const t0 = Date.now();
      const lastSeen: Record<string, string> = {};
      const elsewhere = new Set<string>();
      let probes = 0;
      let refused = 0;
      let firstRefused: Date | null = null;
      let recovered: Date | null = null;
      let acceptedOn: string | null = null;
      for (;;) {
        throwIfCancelled();
        const round = Date.now();
        const last: string | null = acceptedOn;
        const order: string[] = last ? [last, ...nodes.filter((x) => x !== last)] : nodes;
        let took: string | null = null;
        for (const node of order) {
          try {
            const r = await writeProbe(probeRt, call, input.cluster, node);
            if (r.ok) {
              took = node;
              break;
            }
            lastSeen[node] = r.detail;
          } catch (err) {
            lastSeen[node] = errorMessage(err);
          }
        }
        probes++;
        const at = rt.now();
        if (took === null) {
          refused++;
          firstRefused ??= at;
        } else {
          acceptedOn = took;
          if (firstRefused) {
            if (took === input.expectNode) {
              recovered = at;
              break;
            }
            elsewhere.add(took);
          } else if (took === input.expectNode) {
            // The target took writes before any was refused: the switch happened before these probes
            // began (a retry after the worker was lost). Nothing left to measure; don't wait for maxSeconds.
            break;
          }
        }
        if (Date.now() - t0 >= maxMs) break;
        heartbeat({ probes, refused, acceptedOn });
        await sleep(Math.max(0, intervalMs - (Date.now() - round)));
      }
      const downtimeMs = firstRefused && recovered ? recovered.getTime() - firstRefused.getTime() : null;
      const parts = [`${probes} probes, ${refused} refused`];
      if (!firstRefused && acceptedOn === input.expectNode)
        parts.push(
          `${input.expectNode} already took writes when the probes began: the switch happened before them ` +
            `(a probe restarted after the worker was lost), so the write downtime was not measured`,
        );
      else if (!firstRefused) parts.push(`no write was refused in ${((Date.now() - t0) / 1000).toFixed(1)} s (last taken by ${acceptedOn ?? 'none'})`);
      else if (recovered)
        parts.push(
          `writes refused from ${firstRefused.toISOString()} until ${input.expectNode} took one at ${recovered.toISOString()}: ${downtimeMs} ms without writes`,
        );
      else parts.push(`writes refused since ${firstRefused.toISOString()} and not taken by ${input.expectNode} within ${maxMs / 1000} s`);
      if (elsewhere.size) parts.push(`after the first refusal writes were also taken by ${[...elsewhere].join(', ')}`);
      if (!recovered && Object.keys(lastSeen).length)
        parts.push(
          `last refusals: ${Object.entries(lastSeen)
            .map(([k, v]) => `${k}: ${v}`)
            .join('; ')}`,
        );
      return {
        probes,
        refused,
        firstRefusedAt: firstRefused?.toISOString() ?? null,
        firstAcceptedAfterRefusalAt: recovered?.toISOString() ?? null,
        downtimeMs,
        acceptedOn,
        detail: parts.join('; '),
      };
    }),
  };
}
