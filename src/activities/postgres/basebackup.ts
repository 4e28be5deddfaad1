/**
 * Rebuilding a stopped node's data directory with pg_basebackup from a source node, the old one
 * moved aside (never deleted) after a check that the copy has room beside it.
 */
import type { DbNodeConfig } from '../../topology/schema';
import type { PgBasebackupResult } from '../../contract/observations';
import { formatBytes } from '../../contract/format';
import { errorMessage, heartbeat } from '../activity-context';
import { checkedInt } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { execArgv, mustExec, onHost, type OpenSession } from '../ssh/exec';
import { requireFreeSpace } from '../ssh/free-space';
import { inCLocale } from '../ssh/argv';
import { withPgClient } from './connect';
import { listMovedAside, moveDataDirAside } from './data-dir';
import { ensureStandbySignal } from './fence';
import { pgTool } from './paths';
import { pgCtlDataDirStatus, wrongRoleRunning } from './pg-ctl-status';
import { nodeWhere, numberOrNull, outputTail, twoNodes } from './shared';
import { conninfo } from './standby-config';
import { DATABASE_BYTES_SQL } from './status';

const DEFAULT_BASEBACKUP_TIMEOUT_SECONDS = 6 * 3600;

export interface PgBasebackupInput {
  cluster: string;
  node: string;
  source: string;
  /** Bound on pg_basebackup itself (default 6 hours). */
  timeoutSeconds?: number;
}

/**
 * Before a base backup replaces a node's data directory (kept aside on the same filesystem):
 * room for the source's databases plus a reserve, else InsufficientSpace before anything moved.
 * What it found, for the step log; unknown sizes are said, not guessed.
 */
async function checkBasebackupSpace(rt: Runtime, call: Call, input: PgBasebackupInput, open: OpenSession, n: DbNodeConfig): Promise<string> {
  let bytes: number | null = null;
  try {
    bytes = await withPgClient(rt, call, input.cluster, input.source, async (client) => {
      return numberOrNull((await client.query(DATABASE_BYTES_SQL)).rows[0]?.bytes);
    });
  } catch (err) {
    return `free space not checked: the size of ${input.source}'s databases could not be read (${errorMessage(err)})`;
  }
  if (bytes === null || !Number.isFinite(bytes)) return `free space not checked: ${input.source} reported no database size`;
  return requireFreeSpace(
    open,
    n.dataDir,
    bytes,
    (f) =>
      `not enough free space on ${n.sshHost} to copy ${input.source} into ${n.dataDir}: ` +
      `it needs ${formatBytes(bytes + f.reserveBytes)} (${formatBytes(bytes)} of databases + a reserve of ${formatBytes(f.reserveBytes)}), ` +
      `the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free (the current data directory stays there, moved aside). Nothing was moved or copied; ` +
      `free space there (earlier moved-aside directories ${n.dataDir}.switchyard-* are kept until a person removes them) and run it again.`,
  );
}

export function basebackupActivities(rt: Runtime) {
  return {
    /**
     * Rebuild a stopped node's data directory with pg_basebackup from a source node: the old one
     * is moved aside to <dataDir>.switchyard-<UTC stamp> (never deleted; a retry moves its own
     * half-copied directory aside too). Refuses (WrongRole) when the node runs; a failing
     * pg_basebackup throws (retryably) with its output.
     */
    pgBasebackup: rt.activity(async (input: PgBasebackupInput, call): Promise<PgBasebackupResult> => {
      const [n, s] = twoNodes(call, input.cluster, input.node, input.source, 'source');
      const c = call.top.cluster(input.cluster);
      const timeout = checkedInt(input.timeoutSeconds, 'timeoutSeconds', DEFAULT_BASEBACKUP_TIMEOUT_SECONDS, 1, 7 * 86400);
      const t0 = Date.now();
      const w = nodeWhere(input.node, n);
      return onHost(rt, call, input.cluster, n.sshHost, async (open): Promise<PgBasebackupResult> => {
        const st = await pgCtlDataDirStatus(open, n);
        if (st.running === true) throw wrongRoleRunning(input.node, n, st, 'replacing its data directory');
        if (st.running === null)
          throw new Error(`cannot tell whether PostgreSQL runs on ${w} (pg_ctl status: ${st.text}): not moving its data directory aside`);
        const notes: string[] = [];
        // The old directory stays on this filesystem (moved aside): the copy needs room beside it.
        notes.push(await checkBasebackupSpace(rt, call, input, open, n));
        if (st.dataDirExists) {
          const to = await moveDataDirAside(open, n.dataDir, rt.now());
          notes.push(`moved ${n.dataDir} aside to ${to}`);
          rt.log.info('data directory moved aside', { cluster: input.cluster, node: input.node, to });
        }
        const movedAside = await listMovedAside(open, n.dataDir);

        const src = conninfo([
          ['host', s.host],
          ['port', s.port],
          ['user', c.postgres.replication.user],
          ['passfile', c.postgres.passfile],
          ['connect_timeout', 10],
          ['application_name', 'switchyard-pg_basebackup'],
        ]);
        heartbeat({ node: input.node, step: 'pg_basebackup' });
        const r = await execArgv(
          open,
          inCLocale([pgTool(n, 'pg_basebackup'), '-D', n.dataDir, '-X', 'fetch', '--checkpoint=fast', '--progress', '--no-password', '-d', src]),
          timeout,
        );
        if (r.exitCode !== 0) {
          const how = r.timedOut ? `timed out after ${timeout} s` : `exited ${r.exitCode ?? `by signal ${r.signal ?? '?'}`}`;
          throw new Error(`pg_basebackup of ${w} from ${input.source} ${how}:\n${outputTail(`${r.stdout}\n${r.stderr}`, 20)}`);
        }
        // A copy of the primary without standby.signal would start as a second primary after a reboot.
        if (await ensureStandbySignal(open, n)) notes.push('standby.signal written');
        const mode = await execArgv(open, ['stat', '-c', '%a', n.dataDir], 15);
        const m = mode.stdout.trim();
        if (m !== '700' && m !== '750') {
          await mustExec(open, ['chmod', '0700', n.dataDir], `chmod 0700 ${n.dataDir}`);
          notes.push(`mode was ${m || '?'}, set to 0700`);
        } else notes.push(`mode ${m}`);
        const durationMs = Date.now() - t0;
        rt.log.info('pg_basebackup done', { cluster: input.cluster, node: input.node, source: input.source, durationMs });
        return {
          node: input.node,
          source: input.source,
          movedAside,
          durationMs,
          detail: `copied ${input.source} into ${n.dataDir} on ${n.sshHost} with pg_basebackup in ${(durationMs / 1000).toFixed(1)} s; ${notes.join('; ')}`,
        };
      });
    }),
  };
}
