/**
 * PostgreSQL reads: a node's role, LSNs, timeline, replication and slots, and a standby's lag.
 * Status reads report an unreachable node as data (how it failed, see connect.ts); pgLag throws
 * so Temporal retries it. The write probe is in write-probe.ts.
 */
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { errorMessage } from '../activity-context';
import type { Call, PgClientLike, Runtime } from '../runtime';
import { lsnDiff } from '../../contract/lsn';
import type { PgLag, PgNodeStatus } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { connectPg, isServerError, unreachableKind, pgClientConfig, withPgClient } from './connect';
import { pgPoolKey } from './pool';
import { nodeWhere, numberOrNull, pgActionError, textOrNull } from './shared';

interface NodeTarget {
  cluster: string;
  node: string;
  site: string;
  where: string;
}

/** Timeline of the last checkpoint (on a standby: of the last restartpoint). */
export const CHECKPOINT_TLI_SQL = `(SELECT timeline_id FROM pg_control_checkpoint())`;
/** The size of every database the login may connect to, summed (as text: bigint). */
export const DATABASE_BYTES_SQL = `SELECT sum(pg_database_size(oid))::text AS bytes FROM pg_database WHERE has_database_privilege(oid, 'CONNECT')`;

/** Timeline of the WAL segment being written; only valid out of recovery (pg_walfile_name refuses during it). */
export const WAL_TLI_SQL = `('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int`;

/**
 * A node's timeline from the two above: right after a promotion the checkpoint still names the
 * old timeline; the WAL being written already names the new one.
 */
export function timelineOf(checkpointTli: number | null, walTli: number | null): number | null {
  return walTli !== null && checkpointTli !== null ? Math.max(walTli, checkpointTli) : (checkpointTli ?? walTli);
}

const STATUS_SQL = `
SELECT pg_is_in_recovery() AS in_recovery,
       ${CHECKPOINT_TLI_SQL} AS checkpoint_tli,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ${WAL_TLI_SQL} END AS wal_tli,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       current_setting('server_version') AS server_version,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text END AS receive_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS replay_delay`;

const RECEIVER_SQL = `SELECT status, sender_host, sender_port, slot_name FROM pg_stat_wal_receiver`;

const REPLICATION_SQL = `
SELECT application_name, host(client_addr) AS client_addr, state, sent_lsn::text AS sent_lsn, replay_lsn::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() OR replay_lsn IS NULL THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 END AS replay_lag_bytes
  FROM pg_stat_replication ORDER BY application_name, pid`;

const SLOTS_SQL = `SELECT slot_name, active, restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`;

export function postgresActivities(rt: Runtime) {
  const target = (call: Call, cluster: string, node: string): NodeTarget => {
    const n = call.top.node(cluster, node);
    return { cluster, node, site: n.site, where: nodeWhere(node, n) };
  };

  const clientConfig = (call: Call, cluster: string, node: string): Promise<pg.ClientConfig> => pgClientConfig(rt, call, cluster, node);

  /** A read (repeatable): on the worker's pooled connection when there is one. */
  const withClient = <T>(call: Call, cluster: string, node: string, fn: (client: PgClientLike) => Promise<T>): Promise<T> =>
    withPgClient(rt, call, cluster, node, fn, { reuse: true });

  /** As thrown from an action (pgActionError), naming the node and its cluster. */
  const actionError = (tgt: NodeTarget, err: unknown, doing: string): Error => pgActionError(err, `${doing} on ${tgt.where} of cluster "${tgt.cluster}"`);

  /** The status queries on a connected client (throwing on the first that fails). */
  const readStatus = async (client: PgClientLike, base: PgNodeStatus): Promise<PgNodeStatus> => {
    const [s] = (await client.query(STATUS_SQL)).rows;
    const inRecovery = s.in_recovery === true;
    const checkpointTli = numberOrNull(s.checkpoint_tli);
    const walTli = numberOrNull(s.wal_tli);
    const out: PgNodeStatus = {
      ...base,
      reachable: true,
      inRecovery,
      timeline: timelineOf(checkpointTli, walTli) ?? undefined,
      systemIdentifier: textOrNull(s.system_identifier) ?? undefined,
      serverVersion: textOrNull(s.server_version) ?? undefined,
      receiveLsn: inRecovery ? textOrNull(s.receive_lsn) : null,
      replayLsn: inRecovery ? textOrNull(s.replay_lsn) : null,
      replayDelaySeconds: inRecovery ? numberOrNull(s.replay_delay) : null,
    };
    if (!inRecovery) out.currentLsn = textOrNull(s.current_lsn) ?? undefined;
    const [recv] = (await client.query(RECEIVER_SQL)).rows;
    out.walReceiver = recv
      ? {
          status: String(recv.status),
          senderHost: textOrNull(recv.sender_host),
          senderPort: numberOrNull(recv.sender_port),
          slotName: textOrNull(recv.slot_name),
        }
      : null;
    out.replicas = (await client.query(REPLICATION_SQL)).rows.map((r) => ({
      applicationName: String(r.application_name ?? ''),
      clientAddr: textOrNull(r.client_addr),
      state: String(r.state ?? ''),
      sentLsn: textOrNull(r.sent_lsn),
      replayLsn: textOrNull(r.replay_lsn),
      replayLagBytes: numberOrNull(r.replay_lag_bytes),
    }));
    out.slots = (await client.query(SLOTS_SQL)).rows.map((r) => ({
      name: String(r.slot_name),
      active: r.active === true,
      restartLsn: textOrNull(r.restart_lsn),
    }));
    return out;
  };

  /**
   * On a fresh connection a failed connect is classified (unreachableKind) and a failed query
   * reported as such. With the worker's pool a pooled connection is tried first; whatever goes
   * wrong there is done again on a fresh one (pool.ts), so only a fresh connection's failure is
   * ever reported.
   */
  const status = async (call: Call, cluster: string, node: string): Promise<PgNodeStatus> => {
    const tgt = target(call, cluster, node);
    const base: PgNodeStatus = { cluster, node, site: tgt.site, reachable: false };
    const cfg = await clientConfig(call, cluster, node);
    let fresh: PgClientLike | null = null;
    let failed: PgNodeStatus | null = null;
    const connect = async (): Promise<PgClientLike> => {
      try {
        fresh = await connectPg(rt, cfg);
        return fresh;
      } catch (err) {
        const n = call.top.node(cluster, node);
        const h = call.top.host(cluster, n.sshHost);
        failed = { ...base, error: errorMessage(err), unreachable: await unreachableKind(rt, err, n.host, n.port, { host: h.address, port: h.port }) };
        throw err;
      }
    };
    const read = async (client: PgClientLike): Promise<PgNodeStatus> => {
      try {
        return await readStatus(client, base);
      } catch (err) {
        // It answered (or half answered): report what failed rather than pretend it is down. Its
        // role is not known, whatever `reachable` says (no inRecovery is set).
        if (client === fresh)
          failed = { ...base, reachable: isServerError(err), error: errorMessage(err), ...(isServerError(err) ? {} : { unreachable: 'unknown' as const }) };
        throw err;
      }
    };
    try {
      if (rt.pgPool) return await rt.pgPool.run(pgPoolKey(cfg), connect, read);
      const client = await connect();
      try {
        return await read(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    } catch (err) {
      if (failed) return failed;
      throw err;
    }
  };

  return {
    /** Role, timeline, positions, replication and slots of one node. Never throws for an unreachable node. */
    pgStatus: rt.activity((input: { cluster: string; node: string }, call) => status(call, input.cluster, input.node)),

    /**
     * Lag of a standby behind a primary: bytes between the primary's current position and the
     * standby's replay position, seconds since the last replayed transaction (0 when caught up).
     * Both nodes must answer (it throws a retryable error naming the one that did not).
     */
    pgLag: rt.activity(async (input: { cluster: string; primary: string; standby: string }, call): Promise<PgLag> => {
      const p = target(call, input.cluster, input.primary);
      const s = target(call, input.cluster, input.standby);
      let primaryLsn: string;
      try {
        primaryLsn = await withClient(call, input.cluster, input.primary, async (client) => {
          const [r] = (
            await client.query(`SELECT pg_is_in_recovery() AS rec, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn`)
          ).rows;
          if (r.rec === true) throw ApplicationFailure.nonRetryable(`${p.where} is in recovery: it is not a primary to measure lag against`, Errors.WrongRole);
          return String(r.lsn);
        });
      } catch (err) {
        throw actionError(p, err, 'reading the primary position');
      }
      let r: Record<string, unknown>;
      try {
        r = await withClient(call, input.cluster, input.standby, async (client) => {
          const [row] = (
            await client.query(
              `SELECT pg_is_in_recovery() AS rec, pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn,
                      extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS delay`,
            )
          ).rows;
          return row;
        });
      } catch (err) {
        throw actionError(s, err, 'reading the standby position');
      }
      if (r.rec !== true) throw ApplicationFailure.nonRetryable(`${s.where} is not in recovery: it is not a standby`, Errors.WrongRole);
      const receiveLsn = textOrNull(r.receive_lsn);
      const replayLsn = textOrNull(r.replay_lsn);
      const lagBytes = replayLsn ? Math.max(0, lsnDiff(primaryLsn, replayLsn)) : null;
      const caughtUp = replayLsn !== null && lagBytes === 0 && (receiveLsn === null || lsnDiff(receiveLsn, replayLsn) <= 0);
      return {
        primary: input.primary,
        standby: input.standby,
        primaryLsn,
        receiveLsn,
        replayLsn,
        lagBytes,
        lagSeconds: caughtUp ? 0 : numberOrNull(r.delay),
      };
    }),
  };
}
