/**
 * Waiting for a standby during a switchover or rejoin: until it has replayed up to a WAL position,
 * or until it streams from the primary with little lag. Both heartbeat while they wait and report
 * a timeout as data (reached/streaming false, with what they saw last), never as a throw.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { PgWaitReplayResult, PgWaitStreamingResult } from '../../contract/observations';
import { LSN_RE, lsnDiff } from '../../contract/lsn';
import { errorMessage, heartbeat, sleep } from '../activity-context';
import { checkedInt, configError } from '../resolver';
import type { Runtime } from '../runtime';
import { brief, execArgv, throwIfCancelled, withHost } from '../ssh/exec';
import { withPgClient } from './connect';
import { defaultLogFile } from './lifecycle';
import { nodeWhere, textOrNull, twoNodes } from './shared';

const POLL_MS = 250;
const FAST_POLL_MS = 10;
const FAST_POLL_FOR_MS = 1_000;

export interface PgWaitReplayInput {
  cluster: string;
  node: string;
  lsn: string;
  timeoutSeconds: number;
}
export interface PgWaitStreamingInput {
  cluster: string;
  node: string;
  primary: string;
  /** Default: the cluster's postgres.maxLagBytes. */
  maxLagBytes?: number;
  /** Default: the cluster's rejoin.catchUpTimeoutSeconds. */
  timeoutSeconds?: number;
}

export function replicationWaitActivities(rt: Runtime) {
  return {
    /**
     * Wait (heartbeating) until a standby's pg_last_wal_replay_lsn() reaches `lsn`. At the
     * timeout, or when the node is out of recovery and short of it, reached:false (no throw).
     */
    pgWaitReplay: rt.activity(async (input: PgWaitReplayInput, call): Promise<PgWaitReplayResult> => {
      const n = call.top.node(input.cluster, input.node);
      if (typeof input.lsn !== 'string' || !LSN_RE.test(input.lsn))
        throw configError(`lsn must be a WAL position such as "0/3000060", got ${JSON.stringify(input.lsn)}`);
      const timeoutMs = checkedInt(input.timeoutSeconds, 'timeoutSeconds', undefined, 1, 7 * 86400) * 1000;
      const w = nodeWhere(input.node, n);
      const t0 = Date.now();
      let replayLsn: string | null = null;
      let seen = 'not read yet';
      for (;;) {
        throwIfCancelled();
        let rec: boolean | null = null;
        try {
          const [r] = await withPgClient(
            rt,
            call,
            input.cluster,
            input.node,
            async (client) => (await client.query(`SELECT pg_is_in_recovery() AS rec, pg_last_wal_replay_lsn()::text AS replay`)).rows,
            // A read: on the worker's kept connection (the switchover's preflight left one), no login inside the write downtime.
            { reuse: true },
          );
          rec = r.rec === true;
          replayLsn = textOrNull(r.replay);
          seen = rec ? `in recovery, replayed up to ${replayLsn ?? 'nothing yet'}` : `out of recovery (last replayed ${replayLsn ?? 'nothing'})`;
        } catch (err) {
          seen = `cannot read it: ${errorMessage(err)}`;
        }
        const waitedMs = Date.now() - t0;
        const reached = replayLsn !== null && lsnDiff(replayLsn, input.lsn) >= 0;
        if (reached)
          return {
            node: input.node,
            lsn: input.lsn,
            replayLsn,
            reached,
            waitedMs,
            detail: `${w} replayed up to ${replayLsn} (>= ${input.lsn}) after ${waitedMs} ms`,
          };
        if (rec === false || waitedMs >= timeoutMs) {
          const why = rec === false ? `it is out of recovery, so its replay position no longer moves` : `not within ${timeoutMs / 1000} s`;
          return {
            node: input.node,
            lsn: input.lsn,
            replayLsn,
            reached: false,
            waitedMs,
            detail: `${w} has not replayed up to ${input.lsn}: ${why} (${seen})`,
          };
        }
        heartbeat({ node: input.node, replayLsn });
        // Inside a switchover's write downtime the standby is usually a few ms away: look again
        // soon at first, then every POLL_MS.
        await sleep(waitedMs < FAST_POLL_FOR_MS ? FAST_POLL_MS : POLL_MS);
      }
    }),

    /**
     * Wait (heartbeating) until the node is in recovery, its WAL receiver streams from the
     * primary's host:port, and its replay lag behind the primary is at most maxLagBytes. At the
     * timeout, streaming:false with what it saw last (and the node's log when no receiver streamed).
     */
    pgWaitStreaming: rt.activity(async (input: PgWaitStreamingInput, call): Promise<PgWaitStreamingResult> => {
      const [n, p] = twoNodes(call, input.cluster, input.node, input.primary, 'primary');
      const c = call.top.cluster(input.cluster);
      const maxLag = checkedInt(input.maxLagBytes, 'maxLagBytes', c.postgres.maxLagBytes, 0, Number.MAX_SAFE_INTEGER);
      const timeoutMs = checkedInt(input.timeoutSeconds, 'timeoutSeconds', c.rejoin.catchUpTimeoutSeconds, 1, 7 * 86400) * 1000;
      const w = nodeWhere(input.node, n);
      const pw = nodeWhere(input.primary, p);
      const t0 = Date.now();
      let lagBytes: number | null = null;
      let everStreamed = false;
      let seen = 'not read yet';
      for (;;) {
        throwIfCancelled();
        let streaming = false;
        try {
          const [s] = await withPgClient(
            rt,
            call,
            input.cluster,
            input.node,
            async (client) =>
              (
                await client.query(
                  `SELECT pg_is_in_recovery() AS rec, pg_last_wal_replay_lsn()::text AS replay,
                        r.status, r.sender_host, r.sender_port
                   FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true`,
                )
              ).rows,
          );
          const replay = textOrNull(s.replay);
          if (s.rec !== true) {
            seen = `${w} is not in recovery`;
          } else if (s.status === null || s.status === undefined) {
            seen = `${w} is in recovery but no WAL receiver runs (replayed up to ${replay ?? 'nothing'})`;
          } else {
            const from = `${String(s.sender_host)}:${String(s.sender_port)}`;
            const right = s.sender_host === p.host && Number(s.sender_port) === p.port;
            if (s.status === 'streaming' && right) everStreamed = true;
            let primaryLsn: string | null = null;
            let primaryNote = '';
            try {
              const [pr] = await withPgClient(
                rt,
                call,
                input.cluster,
                input.primary,
                async (client) =>
                  (await client.query(`SELECT pg_is_in_recovery() AS rec, CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn`))
                    .rows,
              );
              if (pr.rec === true) primaryNote = `; ${pw} is in recovery itself`;
              primaryLsn = textOrNull(pr.lsn);
            } catch (err) {
              primaryNote = `; cannot read ${pw}: ${errorMessage(err)}`;
            }
            lagBytes = primaryLsn && replay ? Math.max(0, lsnDiff(primaryLsn, replay)) : null;
            streaming = s.status === 'streaming' && right && lagBytes !== null && lagBytes <= maxLag;
            seen =
              `WAL receiver ${String(s.status)} from ${from}${right ? '' : ` (not the primary ${p.host}:${p.port})`}; ` +
              `replayed up to ${replay ?? 'nothing'}, primary at ${primaryLsn ?? '?'}: lag ${lagBytes ?? '?'} bytes (max ${maxLag})${primaryNote}`;
          }
        } catch (err) {
          seen = `cannot read ${w}: ${errorMessage(err)}`;
        }
        const waitedMs = Date.now() - t0;
        if (streaming) return { node: input.node, primary: input.primary, streaming: true, lagBytes, waitedMs, detail: `${w} streams from ${pw}: ${seen}` };
        if (waitedMs >= timeoutMs) {
          let log = '';
          if (!everStreamed) {
            const logFile = defaultLogFile(n);
            try {
              log = await withHost(rt, call, input.cluster, n.sshHost, async (open) => {
                const r = await execArgv(open, ['tail', '-n', '20', logFile], 15);
                return r.exitCode === 0 && r.stdout.trim()
                  ? `\n--- last lines of ${logFile} on ${open.name} ---\n${r.stdout.trimEnd()}`
                  : `\n(${logFile} on ${open.name}: tail ${brief(r)})`;
              });
            } catch (err) {
              if (err instanceof ApplicationFailure) throw err;
              log = `\n(cannot read ${logFile}: ${errorMessage(err)})`;
            }
          }
          return {
            node: input.node,
            primary: input.primary,
            streaming: false,
            lagBytes,
            waitedMs,
            detail: `${w} is not streaming from ${pw} within ${timeoutMs / 1000} s: ${seen}${log}`,
          };
        }
        heartbeat({ node: input.node, lagBytes });
        await sleep(POLL_MS * 2);
      }
    }),
  };
}
