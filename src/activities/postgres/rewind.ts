/**
 * pg_rewind of a stopped former primary from the new primary, and what switchyard reads from its
 * output: where the two diverged, and how many bytes of WAL the target wrote after the fork
 * (measured from its control file, after crash recovery when it had not shut down cleanly).
 */
import type { PgRewindResult } from '../../contract/observations';
import { lsnDiff } from '../../contract/lsn';
import { errorMessage, heartbeat } from '../activity-context';
import { checkedInt } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { brief, execArgv, onHost } from '../ssh/exec';
import { inCLocale } from '../ssh/argv';
import { withPgClient } from './connect';
import { ensureStandbySignal } from './fence';
import { parseControlData } from './lifecycle';
import { pgTool } from './paths';
import { pgCtlDataDirStatus, wrongRoleRunning } from './pg-ctl-status';
import { nodeWhere, outputTail, twoNodes } from './shared';
import { conninfo } from './standby-config';
import { CHECKPOINT_TLI_SQL, WAL_TLI_SQL } from './status';

const DEFAULT_REWIND_TIMEOUT_SECONDS = 3600;

export interface PgRewindInput {
  cluster: string;
  node: string;
  source: string;
  /** Bound on pg_rewind itself (default 3600). */
  timeoutSeconds?: number;
}

export interface RewindOutput {
  divergedAtLsn: string | null;
  divergedTimeline: number | null;
  noRewindNeeded: boolean;
  /** "source and target cluster are on the same timeline" (read from the two control files). */
  sameTimeline: boolean;
  /** pg_rewind ran the target's crash recovery in single-user mode first. */
  crashRecovery: boolean;
}

/** What switchyard reads from pg_rewind's output (PostgreSQL 15, C locale). */
export function parseRewindOutput(text: string): RewindOutput {
  const m = /servers diverged at WAL location ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}) on timeline (\d+)/.exec(text);
  return {
    divergedAtLsn: m ? m[1].toUpperCase() : null,
    divergedTimeline: m ? Number(m[2]) : null,
    noRewindNeeded: /\bno rewind required\b/.test(text),
    sameTimeline: /source and target cluster are on the same timeline/.test(text),
    crashRecovery: /for target server to complete crash recovery/.test(text),
  };
}

/**
 * Right after a promotion the source's control file still names the old timeline until its
 * first checkpoint completes, and PostgreSQL 15's pg_rewind reads the source's timeline from
 * there: it would say "no rewind required" for a target that did diverge. Force that checkpoint.
 */
async function checkpointIfPromoted(rt: Runtime, call: Call, cluster: string, source: string): Promise<{ note: string; timeline: number | null }> {
  try {
    return await withPgClient(
      rt,
      call,
      cluster,
      source,
      async (client) => {
        const [r] = (
          await client.query(
            `SELECT pg_is_in_recovery() AS rec, ${CHECKPOINT_TLI_SQL} AS checkpoint_tli, ` +
              `CASE WHEN pg_is_in_recovery() THEN NULL ELSE ${WAL_TLI_SQL} END AS wal_tli`,
          )
        ).rows;
        if (r.rec === true) return { note: '', timeline: null };
        const cp = Number(r.checkpoint_tli);
        const wal = Number(r.wal_tli);
        if (!(wal > cp)) return { note: '', timeline: cp };
        const beat = setInterval(() => heartbeat({ source, step: 'checkpoint' }), 2_000);
        try {
          await client.query('CHECKPOINT');
        } catch (err) {
          // e.g. 42501: the user may not CHECKPOINT (needs superuser or pg_checkpoint).
          return { note: `could not CHECKPOINT ${source} after its promotion to timeline ${wal} (${errorMessage(err)})`, timeline: wal };
        } finally {
          clearInterval(beat);
        }
        return {
          note:
            `forced a CHECKPOINT on ${source}: its control file still named timeline ${cp} after its promotion to ${wal}, ` +
            `and pg_rewind reads the source's timeline from there`,
          timeline: wal,
        };
      },
      { statementMs: 600_000 },
    );
  } catch (err) {
    return { note: `could not check ${source}'s checkpoint timeline (${errorMessage(err)})`, timeline: null };
  }
}

export function rewindActivities(rt: Runtime) {
  return {
    /**
     * pg_rewind a stopped node's data directory from a source node (the new primary). Refuses
     * (WrongRole) when it runs. Reads its pg_controldata first: after a clean stop the latest
     * checkpoint is where its WAL ends, so divergedBytes (that end minus the fork point) is what
     * it wrote after the fork and the rewind threw away. A failing pg_rewind is ok:false with its
     * output (take a base backup instead); SSH problems throw.
     */
    pgRewind: rt.activity(async (input: PgRewindInput, call): Promise<PgRewindResult> => {
      const [n, s] = twoNodes(call, input.cluster, input.node, input.source, 'source');
      const c = call.top.cluster(input.cluster);
      const timeout = checkedInt(input.timeoutSeconds, 'timeoutSeconds', DEFAULT_REWIND_TIMEOUT_SECONDS, 1, 7 * 86400);
      const t0 = Date.now();
      const w = nodeWhere(input.node, n);
      const base = { node: input.node, source: input.source, noRewindNeeded: false, divergedAtLsn: null, divergedTimeline: null, divergedBytes: null };
      return onHost(rt, call, input.cluster, n.sshHost, async (open): Promise<PgRewindResult> => {
        const st = await pgCtlDataDirStatus(open, n);
        if (st.running === true) throw wrongRoleRunning(input.node, n, st, 'pg_rewind');
        if (!st.dataDirExists) {
          return {
            ...base,
            ok: false,
            targetEndLsn: null,
            durationMs: Date.now() - t0,
            output: '',
            detail: `${w} has no data directory at ${n.dataDir}: nothing to rewind (take a base backup)`,
          };
        }
        if (st.running === null) throw new Error(`cannot tell whether PostgreSQL runs on ${w} (pg_ctl status: ${st.text}): not rewinding`);

        const notes: string[] = [];
        const cp = await checkpointIfPromoted(rt, call, input.cluster, input.source);
        if (cp.note) notes.push(cp.note);
        const src = conninfo([
          ['host', s.host],
          ['port', s.port],
          ['user', c.postgres.user],
          ['dbname', c.postgres.database],
          ['passfile', c.postgres.passfile],
          ['connect_timeout', 10],
          ['application_name', 'switchyard-pg_rewind'],
        ]);
        const readControl = async () => {
          const ctl = await execArgv(open, inCLocale([pgTool(n, 'pg_controldata'), '-D', n.dataDir]), 30);
          return { ctl, control: ctl.exitCode === 0 ? parseControlData(ctl.stdout) : null };
        };
        let { ctl, control } = await readControl();
        if (control && control.state !== 'shut down' && control.state !== 'shut down in recovery') {
          // A crashed target: its WAL goes on past the latest checkpoint. pg_rewind --dry-run runs
          // the crash recovery (single-user mode) and changes nothing else, so the control file
          // then says where its WAL really ends: what the rewind will discard is measured exactly.
          heartbeat({ node: input.node, step: 'crash recovery' });
          const dry = await execArgv(open, inCLocale([pgTool(n, 'pg_rewind'), '--dry-run', `--target-pgdata=${n.dataDir}`, `--source-server=${src}`]), timeout);
          const before = control.state;
          ({ ctl, control } = await readControl());
          notes.push(
            control?.state === 'shut down'
              ? `${input.node} had not shut down cleanly ("${before}"): crash recovery first (pg_rewind --dry-run); its WAL ends at ${control.checkpointLsn}`
              : `${input.node} had not shut down cleanly ("${before}") and crash recovery did not settle it ` +
                  `(pg_rewind --dry-run ${brief(dry)}): divergedBytes is a lower bound`,
          );
        }
        const targetEndLsn = control?.checkpointLsn ?? null;
        if (!control) notes.push(`pg_controldata ${brief(ctl)}`);

        heartbeat({ node: input.node, step: 'pg_rewind' });
        const r = await execArgv(open, inCLocale([pgTool(n, 'pg_rewind'), `--target-pgdata=${n.dataDir}`, `--source-server=${src}`, '--progress']), timeout);
        // pg_rewind removes files the source lacks (standby.signal, a fence marker): put the signal
        // back at once, so a restart before the rejoin configures the node comes up read-only.
        if (await ensureStandbySignal(open, n)) notes.push('standby.signal written (a restart before the rejoin ends comes up read-only)');
        const text = `${r.stdout}\n${r.stderr}`;
        const parsed = parseRewindOutput(text);
        const output = outputTail(text);
        // "Same timeline" while the control files say otherwise: pg_rewind compared a stale
        // timeline (the source's checkpoint could not be forced). Trusting it would start the
        // old primary as a standby of a history it is not on.
        const stale = parsed.sameTimeline && cp.timeline !== null && control?.timeline != null && control.timeline !== cp.timeline;
        const ok = r.exitCode === 0 && !stale;
        // "No rewind required": the target's WAL ends at or before the fork, nothing is discarded.
        const divergedBytes = !ok
          ? null
          : parsed.noRewindNeeded
            ? 0
            : parsed.divergedAtLsn && targetEndLsn
              ? Math.max(0, lsnDiff(targetEndLsn, parsed.divergedAtLsn))
              : null;
        if (parsed.crashRecovery) notes.push('pg_rewind first ran crash recovery on the target in single-user mode');
        const fork = parsed.divergedAtLsn ? `servers diverged at ${parsed.divergedAtLsn} on timeline ${parsed.divergedTimeline}` : 'no fork point reported';
        let detail: string;
        if (stale)
          detail =
            `pg_rewind of ${w} from ${input.source} reported the same timeline, but ${input.node} is on timeline ${control?.timeline} ` +
            `and ${input.source} on ${cp.timeline}: not trusted (take a base backup, or CHECKPOINT ${input.source} and rewind again)`;
        else if (!ok) detail = `pg_rewind of ${w} from ${input.source} failed (${brief(r)}): take a base backup instead`;
        else if (parsed.noRewindNeeded) detail = `no rewind required for ${w} (${fork}; its WAL ends at ${targetEndLsn ?? '?'}): nothing was discarded`;
        else
          detail =
            `rewound ${w} from ${input.source}: ${fork}; ` +
            `${divergedBytes ?? '?'} bytes of WAL it wrote after that (up to ${targetEndLsn ?? '?'}) were discarded`;
        if (ok)
          rt.log.info(parsed.noRewindNeeded ? 'pg_rewind: no rewind required' : 'pg_rewind done', {
            cluster: input.cluster,
            node: input.node,
            source: input.source,
            divergedBytes,
          });
        return {
          ...base,
          ok,
          noRewindNeeded: ok && parsed.noRewindNeeded,
          divergedAtLsn: parsed.divergedAtLsn,
          divergedTimeline: parsed.divergedTimeline,
          targetEndLsn,
          divergedBytes,
          durationMs: Date.now() - t0,
          output,
          detail: [detail, ...notes].join('; '),
        };
      });
    }),
  };
}
