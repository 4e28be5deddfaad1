/**
 * Restore drills that prove a backup restores (pgDrill): the backup extracted into <root>/<cluster>/.drill-<backupId> on
 * the backup host with its own configuration (pg-drill-config.ts), started on its own socket (trusted: no password), the
 * topology's verify queries and a row count per user table run, then stopped and removed whatever happened; only a drill
 * that passed writes drill.json. Scripts are fixed `sh -c` texts that get every path and value as a positional argument.
 */
import { posix } from 'node:path';
import type { PgBackupManifest, PgDrillInput, PgDrillRecord, PgDrillResult, PitrReached } from '../../contract/backup';
import type { ClusterConfig } from '../../topology/schema';
import { ApplicationFailure } from '@temporalio/common';
import { Errors } from '../../contract/errors';
import { walPaths } from './wal-archive';
import { DRILL_FILE, MANIFEST_FILE, verifyOnHost } from './files';
import { backupConfig, backupPaths, extractedBytes, HASH_TIMEOUT_SECONDS, onBackupHost, parsePgMajor, readManifest, readText, writeText } from './pg-catalog';
import {
  DRILL_HBA,
  DRILL_OWNED_SETTINGS,
  drillPostgresqlConf,
  drillSocketDir,
  parseRowCounts,
  rewriteTablespaceMap,
  ROW_COUNTS_SQL,
  stripSettings,
} from './pg-drill-config';
import { checkedInt, configError } from '../resolver';
import { errorMessage, heartbeat } from '../activity-context';
import type { Runtime } from '../runtime';
import type { SshExecResult } from '../ssh/session';
import { brief, execArgv, mustExec, type OpenSession } from '../ssh/exec';
import { holdHostLock, type HostLock } from '../ssh/host-lock';
import { ensureOnHost, storeDrillRecord } from './store-backup';
import { requireFreeSpace } from '../ssh/free-space';
import { commandLine } from '../ssh/quote';
import { formatBytes } from '../../contract/format';
import { inCLocale, shellScript } from '../ssh/argv';

/**
 * A server that is started but not yet consistent (or still starting): asked again, not a failure.
 * "not accepting connections … Hot standby mode is disabled" is a copy still replaying its backup's
 * WAL with hot_standby off (the drill removed standby.signal and recovery.signal, so it ends).
 */
const NOT_YET_RE =
  /not yet accepting connections|the database system is starting up|the database system is in recovery mode|consistent recovery state has not been yet reached|the database system is not accepting connections[\s\S]*Hot standby mode is disabled/i;
const DEFAULT_DRILL_START_TIMEOUT_SECONDS = 600;
/** How long a drill waits while another drill of the same backup runs (they share its scratch copy). */
const DRILL_LOCK_WAIT_SECONDS = 6 * 3600;
const QUERY_TIMEOUT_SECONDS = 600;
/** What a verify query's result keeps (it lands in drill.json and in history). */
const MAX_QUERY_RESULT_CHARS = 2000;

// ---------------------------------------------------------------------------------------------
// Scripts run on the backup host (fixed text; every path and value a positional argument)

/**
 * Take a drill's scratch copy away: a server still running there (postmaster.pid in $2 whose
 * process works in $2) stopped with pg_ctl (fast, then immediate, then KILL), then $1 and the
 * socket dir $4 (when separate) removed. Prints "stopped <pid>" when it stopped one. Exit 0 only
 * when nothing is left.
 */
const CLEAN_SCRATCH_SH = [
  's="$1"; d="$2"; ctl="$3"; sock="$4"',
  'if [ -f "$d/postmaster.pid" ]; then',
  '  pid=$(head -n 1 -- "$d/postmaster.pid" 2>/dev/null)',
  '  case "$pid" in ""|*[!0-9]*) pid=;; esac',
  '  rd=$(cd -- "$d" 2>/dev/null && pwd -P)',
  '  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ -n "$rd" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$rd" ]; then',
  '    "$ctl" -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1 || "$ctl" -D "$d" -m immediate -w -t 15 stop >/dev/null 2>&1 || true',
  '    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; sleep 1; fi',
  '    echo "stopped $pid"',
  '  fi',
  'fi',
  'rm -rf -- "$s"',
  'if [ -n "$sock" ]; then rm -rf -- "$sock"; fi',
  'if [ -e "$s" ] || { [ -n "$sock" ] && [ -e "$sock" ]; }; then echo "still there" >&2; exit 1; fi',
].join('\n');
/** Make the scratch layout: $1 (scratch) and $2 (its data dir) mode 0700, and $3 (separate socket dir) when given. */
const MAKE_SCRATCH_SH =
  'set -e; umask 077; mkdir -p -- "$1"; mkdir -- "$2"; chmod 0700 -- "$1" "$2"; if [ -n "$3" ]; then mkdir -p -- "$3"; chmod 0700 -- "$3"; fi';
/** Extract the backup's tars into the scratch data dir ($2): base, WAL into pg_wal, each tablespace <oid>.tar.gz into $3/<oid>. */
const EXTRACT_SH = [
  'set -e',
  'b="$1"; d="$2"; ts="$3"',
  'tar -xzf "$b/base.tar.gz" -C "$d" --no-same-owner',
  'mkdir -p -- "$d/pg_wal"',
  'if [ -f "$b/pg_wal.tar.gz" ]; then tar -xzf "$b/pg_wal.tar.gz" -C "$d/pg_wal" --no-same-owner; fi',
  'for t in "$b"/*.tar.gz; do',
  '  n=$(basename -- "$t" .tar.gz)',
  '  case "$n" in base|pg_wal) continue;; *[!0-9]*) continue;; esac',
  '  mkdir -p -m 0700 -- "$ts/$n"',
  '  tar -xzf "$t" -C "$ts/$n" --no-same-owner',
  '  echo "tablespace $n"',
  'done',
  'rm -f -- "$d/standby.signal" "$d/recovery.signal" "$d/postmaster.pid" "$d/postmaster.opts"',
  'chmod 0700 -- "$d"',
].join('\n');

/** Stop and remove a drill's scratch copy (and its separate socket dir). */
async function cleanScratch(
  open: OpenSession,
  scratch: string,
  dataDir: string,
  pgCtl: string,
  socket: { dir: string; separate: boolean },
): Promise<{ ok: boolean; detail: string }> {
  // Not through execArgv: a cancelled drill must still take its scratch copy away.
  const command = commandLine(shellScript(CLEAN_SCRATCH_SH, scratch, dataDir, pgCtl, socket.separate ? socket.dir : ''));
  const beat = setInterval(() => heartbeat({ host: open.name, step: 'cleanup' }), 2_000);
  let r: SshExecResult;
  try {
    r = await open.session.exec(command, { timeoutMs: 120_000 });
  } finally {
    clearInterval(beat);
  }
  const stopped = /stopped (\d+)/.exec(r.stdout);
  if (r.code !== 0) {
    const out = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ');
    return {
      ok: false,
      detail:
        `removing the scratch copy ${scratch} on ${open.name} ` +
        `${r.timedOut ? 'timed out' : `exited ${r.code ?? `by signal ${r.signal ?? '?'}`}`}${out ? `: ${out}` : ''}`,
    };
  }
  return { ok: true, detail: stopped ? `stopped the scratch server (pid ${stopped[1]}) and removed ${scratch}` : `removed ${scratch}` };
}

/** A point-in-time drill's target and archive, checked: null for an ordinary drill. */
function pitrOf(input: PgDrillInput, b: NonNullable<ClusterConfig['backup']>): { targetTime: string; walDir: string } | null {
  if (input.targetTime === undefined) return null;
  const t = typeof input.targetTime === 'string' ? Date.parse(input.targetTime) : NaN;
  if (Number.isNaN(t)) throw configError(`targetTime must be an ISO time such as "2026-12-04T03:15:00Z", got ${JSON.stringify(input.targetTime)}`);
  if (!b.archive)
    throw configError(
      `a point-in-time drill of cluster "${input.cluster}" needs WAL archiving (backup.archive in the topology): there is no archive to replay`,
    );
  return { targetTime: new Date(t).toISOString(), walDir: walPaths(b.root, input.cluster).dir };
}

export function pgDrillActivities(rt: Runtime) {
  return {
    /**
     * Prove a backup restores: checked against its manifest, extracted into a scratch directory,
     * started on its own socket, queried, stopped and removed; drill.json only when all passed.
     */
    pgDrill: rt.activity(async (input: PgDrillInput, call): Promise<PgDrillResult> => {
      const b = backupConfig(call, input.cluster);
      const c = call.top.cluster(input.cluster);
      const paths = backupPaths(b.root, input.cluster, input.backupId);
      const startTimeout = checkedInt(input.startTimeoutSeconds, 'startTimeoutSeconds', DEFAULT_DRILL_START_TIMEOUT_SECONDS, 1, 7 * 86400);
      const port = b.drillPort;
      const scratch = paths.scratch;
      const dataDir = posix.join(scratch, 'data');
      const tsDir = posix.join(scratch, 'tablespaces');
      const logFile = posix.join(scratch, 'drill.log');
      const socket = drillSocketDir(scratch, port);
      const pgCtl = posix.join(b.binDir, 'pg_ctl');
      const pitr = pitrOf(input, b);
      const psqlArgv = (sql: string) =>
        inCLocale([
          posix.join(b.binDir, 'psql'),
          '-X',
          '-q',
          '-A',
          '-t',
          '-v',
          'ON_ERROR_STOP=1',
          '-h',
          socket.dir,
          '-p',
          String(port),
          '-U',
          c.postgres.user,
          '-d',
          c.postgres.database,
          '-c',
          sql,
        ]);
      const log = { cluster: input.cluster, backupId: input.backupId, scratch };
      const base = { backupId: input.backupId, scratchDir: scratch, scratchPort: port };

      return onBackupHost(rt, call, input.cluster, async (open): Promise<PgDrillResult> => {
        // Only in the store (the backup host lost it): downloaded first, under the fetch lock retention respects.
        const { fetched, lock: fetchLock } = await ensureOnHost(rt, call, open, input.cluster, input.backupId, paths);
        let lock: HostLock | null = null;
        let inUse: HostLock | null = null;
        try {
          const manifest = await readManifest(open, input.cluster, input.backupId, paths.dir);
          // One drill of a backup at a time (they share its scratch copy): a second one waits here.
          lock = await holdHostLock(open, paths.dir, DRILL_LOCK_WAIT_SECONDS, `the drill of backup ${input.backupId}`);
          // In use: retention keeps the backup while this is held (src/activities/backup/pg-catalog.ts).
          inUse = await holdHostLock(open, posix.join(paths.dir, MANIFEST_FILE), DRILL_LOCK_WAIT_SECONDS, `the drill of backup ${input.backupId}`, {
            shared: true,
          });
          await fetchLock?.release();
          const notes = !lock.held
            ? [`${open.name} has no flock(1): drills of one backup at the same time are not kept apart`]
            : lock.waitedSeconds
              ? [`waited ${lock.waitedSeconds.toFixed(1)} s for another drill of this backup to finish`]
              : [];
          if (fetched) notes.unshift(fetched.detail);
          const r = await drillLocked(open, manifest, notes);
          if (r.ok && r.record) {
            try {
              const url = await storeDrillRecord(rt, call, input.cluster, input.backupId, `${JSON.stringify(r.record, null, 2)}\n`);
              if (url) r.detail += `; drill record copied to ${url}`;
            } catch (err) {
              rt.log.warn('drill record not copied to the store', { ...log, error: errorMessage(err) });
              r.detail += `; drill record not copied to the store (${errorMessage(err)})`;
            }
          }
          return { ...r, fetched };
        } finally {
          await inUse?.release();
          await lock?.release();
          await fetchLock?.release();
        }
      });

      /** The drill itself, under the backup's lock. */
      async function drillLocked(open: OpenSession, manifest: PgBackupManifest, notes: string[]): Promise<PgDrillResult> {
        if (pitr && Date.parse(manifest.finishedAt) > Date.parse(pitr.targetTime))
          throw ApplicationFailure.nonRetryable(
            `backup ${input.backupId} finished at ${manifest.finishedAt}, after the target time ${pitr.targetTime}: a point-in-time restore replays forward from a backup ` +
              `that finished before it (leave out the backup id and the newest such backup is chosen)`,
            Errors.BackupTooNew,
          );
        const first = await cleanScratch(open, scratch, dataDir, pgCtl, socket);
        if (!first.ok) throw new Error(`drill of ${input.backupId}: a leftover scratch copy cannot be removed: ${first.detail}`);
        if (first.detail.startsWith('stopped')) notes.push(`a leftover scratch server from an earlier attempt: ${first.detail}`);

        const verify = await verifyOnHost(open, paths.dir, input.backupId, manifest.files, HASH_TIMEOUT_SECONDS);
        if (!verify.ok) {
          rt.log.warn('drill refused: backup does not match its manifest', { ...log, problems: verify.problems.length });
          return { ...base, ok: false, failure: verify.detail, verify, record: null, cleanedUp: true, detail: `not restored: ${verify.detail}` };
        }

        const ver = await execArgv(open, inCLocale([posix.join(b.binDir, 'postgres'), '--version']), 30);
        const major = parsePgMajor(ver.stdout);
        if (ver.exitCode !== 0 || major === null) throw configError(`backup.binDir ${b.binDir} on ${open.name} has no usable postgres (${brief(ver)})`);
        if (major !== manifest.pgMajor) {
          throw configError(
            `backup ${input.backupId} is of PostgreSQL ${manifest.pgMajor} but backup.binDir ${b.binDir} on ${open.name} holds PostgreSQL ${major} ` +
              `(${ver.stdout.trim()}): a drill needs the same major version`,
          );
        }

        // The scratch copy is the whole database, on the backup host: refuse before extracting when it would not fit.
        const { bytes: need, basis } = extractedBytes(manifest);
        notes.push(
          await requireFreeSpace(
            open,
            paths.clusterDir,
            need,
            (f) =>
              `not enough free space on ${open.name} to drill backup ${input.backupId}: its scratch copy takes about ${formatBytes(need)} ` +
              `(${basis}) ` +
              `plus a reserve of ${formatBytes(f.reserveBytes)}, but the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free. ` +
              `Nothing was extracted; the backup is not marked either way.`,
          ),
        );

        /** Extract, configure, start, query: what went wrong in words, or the record's measurements. */
        const attempt = async (): Promise<
          { failure: string } | { rtoSeconds: number; rowCounts: Record<string, number>; queries: PgDrillRecord['queries']; reached: PitrReached | null }
        > => {
          const t0 = Date.now();
          await mustExec(open, shellScript(MAKE_SCRATCH_SH, scratch, dataDir, socket.separate ? socket.dir : ''), `creating the scratch directory ${scratch}`);
          heartbeat({ backupId: input.backupId, step: 'extract' });
          const ex = await execArgv(open, shellScript(EXTRACT_SH, paths.dir, dataDir, tsDir), HASH_TIMEOUT_SECONDS);
          if (ex.exitCode !== 0) return { failure: `extracting backup ${input.backupId} into ${dataDir} on ${open.name} failed: ${brief(ex)}` };
          if (ex.stdout.split('\n').some((l) => l.startsWith('tablespace '))) {
            const map = await readText(open, posix.join(dataDir, 'tablespace_map'));
            if (map.kind === 'file') {
              const rw = rewriteTablespaceMap(map.text, (oid) => posix.join(tsDir, oid));
              await writeText(open, posix.join(dataDir, 'tablespace_map'), rw.text);
              notes.push(`${rw.oids.length} tablespace(s) restored inside the scratch directory`);
            }
          }
          const auto = await readText(open, posix.join(dataDir, 'postgresql.auto.conf'));
          if (auto.kind === 'file') {
            const stripped = stripSettings(auto.text, DRILL_OWNED_SETTINGS);
            if (stripped.removed.length) {
              await writeText(open, posix.join(dataDir, 'postgresql.auto.conf'), stripped.text);
              notes.push(`removed from the copy's postgresql.auto.conf: ${stripped.removed.join(', ')}`);
            }
          }
          await writeText(
            open,
            posix.join(dataDir, 'postgresql.conf'),
            drillPostgresqlConf({
              cluster: input.cluster,
              backupId: input.backupId,
              dataDir,
              socketDir: socket.dir,
              port,
              ...(pitr ? { recovery: { walDir: pitr.walDir, targetTime: pitr.targetTime } } : {}),
            }),
          );
          // Targeted recovery (not a standby): replays the archive to the target, then promotes.
          if (pitr) await writeText(open, posix.join(dataDir, 'recovery.signal'), '');
          await writeText(open, posix.join(dataDir, 'pg_hba.conf'), DRILL_HBA);
          await writeText(open, posix.join(dataDir, 'pg_ident.conf'), '');
          await mustExec(open, ['chmod', '0700', '--', scratch, dataDir], `chmod 0700 ${dataDir}`);

          heartbeat({ backupId: input.backupId, step: 'start' });
          const st = await execArgv(open, inCLocale([pgCtl, '-D', dataDir, '-l', logFile, '-w', '-t', String(startTimeout), 'start']), startTimeout + 15);
          /** The end of the copy's server log, for a failure: why it stopped is written there. */
          const logEnd = async () => {
            const tail = (await execArgv(open, ['tail', '-n', '15', '--', logFile], 15)).stdout.trim();
            return tail ? `; its log ends:\n${tail}` : '';
          };
          if (st.exitCode !== 0) {
            return { failure: `the restored copy of ${input.backupId} did not start on ${open.name} (pg_ctl start ${brief(st)})${await logEnd()}` };
          }
          // pg_ctl -w returns once a copy that replays WAL as a standby is started, which may be
          // before it is consistent and takes connections: asked again until then (within its start timeout).
          let ping = await execArgv(open, psqlArgv('SELECT 1'), QUERY_TIMEOUT_SECONDS);
          for (const until = Date.now() + startTimeout * 1000; ping.exitCode !== 0 && NOT_YET_RE.test(ping.stderr) && Date.now() < until;) {
            heartbeat({ backupId: input.backupId, step: 'start: not yet accepting connections' });
            await new Promise((r) => setTimeout(r, 500));
            ping = await execArgv(open, psqlArgv('SELECT 1'), QUERY_TIMEOUT_SECONDS);
          }
          if (ping.exitCode !== 0 || ping.stdout.trim() !== '1') {
            return {
              failure: `the restored copy of ${input.backupId} started but does not answer on its socket in ${socket.dir} (port ${port}): ${brief(ping)}${await logEnd()}`,
            };
          }
          const rtoSeconds = Math.round(Date.now() - t0) / 1000;
          let reached: PitrReached | null = null;
          if (pitr) {
            const q = await execArgv(
              open,
              psqlArgv(
                `SELECT pg_is_in_recovery(), coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), ''), ` +
                  `pg_current_wal_lsn(), (SELECT timeline_id FROM pg_control_checkpoint())`,
              ),
              QUERY_TIMEOUT_SECONDS,
            );
            const [rec, at, lsn, tli] = q.stdout.trim().split('|');
            if (q.exitCode !== 0 || rec !== 'f')
              return {
                failure: `the point-in-time copy of ${input.backupId} did not promote after replaying to ${pitr.targetTime}: ${q.exitCode !== 0 ? brief(q) : 'still in recovery'}`,
              };
            reached = { targetTime: pitr.targetTime, lastReplayAt: at || null, lsn: lsn || null, timeline: tli ? Number(tli) : null };
            notes.push(
              `replayed the WAL archive to ${pitr.targetTime}: last transaction replayed committed at ${reached.lastReplayAt ?? 'none (no transaction after the backup)'}, ` +
                `LSN ${reached.lsn}, timeline ${reached.timeline}`,
            );
          }

          heartbeat({ backupId: input.backupId, step: 'verify queries' });
          const queries: PgDrillRecord['queries'] = [];
          for (const sql of b.verifyQueries) {
            const q = await execArgv(open, psqlArgv(sql), QUERY_TIMEOUT_SECONDS);
            const ok = q.exitCode === 0;
            queries.push({ sql, ok, result: (ok ? q.stdout.trim() : brief(q)).slice(0, MAX_QUERY_RESULT_CHARS) });
          }
          const problems = queries
            .filter((q) => !q.ok)
            .map((q) => `verify query ${JSON.stringify(q.sql.length > 120 ? `${q.sql.slice(0, 120)}…` : q.sql)} failed on the restored copy: ${q.result}`);
          let rowCounts: Record<string, number> = {};
          const rc = await execArgv(open, psqlArgv(ROW_COUNTS_SQL), QUERY_TIMEOUT_SECONDS);
          if (rc.exitCode !== 0) problems.push(`counting the rows of every table of the restored copy failed: ${brief(rc)}`);
          else {
            try {
              rowCounts = parseRowCounts(rc.stdout);
            } catch (err) {
              problems.push(`counting the rows of every table of the restored copy: ${errorMessage(err)}`);
            }
          }
          if (problems.length) return { failure: problems.join('; ') };
          return { rtoSeconds, rowCounts, queries, reached };
        };

        let outcome: Awaited<ReturnType<typeof attempt>>;
        let cleanup: { ok: boolean; detail: string };
        try {
          outcome = await attempt();
        } finally {
          // Always: also when a step threw (the session is still open unless the host went away).
          heartbeat({ backupId: input.backupId, step: 'cleanup' });
          cleanup = await cleanScratch(open, scratch, dataDir, pgCtl, socket).catch((err: unknown) => ({
            ok: false,
            detail: `removing the scratch copy ${scratch}: ${errorMessage(err)}`,
          }));
          if (!cleanup.ok) rt.log.warn('drill scratch copy not removed', { ...log, detail: cleanup.detail });
        }
        // A scratch server left behind is retried (the next attempt stops it via its postmaster.pid).
        if (!cleanup.ok) throw new Error(`drill of ${input.backupId}: ${cleanup.detail}`);

        if ('failure' in outcome) {
          rt.log.warn('drill failed', { ...log, failure: outcome.failure });
          return {
            ...base,
            ok: false,
            failure: outcome.failure,
            verify,
            record: null,
            cleanedUp: true,
            detail: `not proven restorable: ${outcome.failure}; ${cleanup.detail}`,
          };
        }
        const provenAt = rt.now();
        const record: PgDrillRecord = {
          backupId: input.backupId,
          provenAt: provenAt.toISOString(),
          workflowId: input.workflowId,
          rtoSeconds: outcome.rtoSeconds,
          rpoSeconds: Math.round(provenAt.getTime() - Date.parse(manifest.finishedAt)) / 1000,
          rowCounts: outcome.rowCounts,
          queries: outcome.queries,
        };
        // The temp file sits beside the backup directory (dot-named, so never listed), not in it: a
        // write cut short must leave nothing there that a manifest check would call unlisted.
        await writeText(
          open,
          posix.join(paths.dir, DRILL_FILE),
          `${JSON.stringify(record, null, 2)}\n`,
          posix.join(paths.clusterDir, `.${input.backupId}.${DRILL_FILE}.tmp`),
        );
        const rows = Object.values(record.rowCounts).reduce((s, n) => s + n, 0);
        rt.log.info('drill passed', { ...log, rtoSeconds: record.rtoSeconds, rpoSeconds: record.rpoSeconds });
        return {
          ...base,
          ok: true,
          failure: null,
          verify,
          record,
          reached: outcome.reached,
          cleanedUp: true,
          detail:
            `backup ${input.backupId} restores: ${verify.detail}; ` +
            `answered after ${record.rtoSeconds.toFixed(1)} s (RTO), ` +
            `${record.queries.length} verify quer${record.queries.length === 1 ? 'y' : 'ies'} passed, ` +
            `${Object.keys(record.rowCounts).length} tables with ${rows} rows; backup age ${record.rpoSeconds.toFixed(0)} s (RPO); ` +
            `${cleanup.detail}; drill.json written${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      }
    }),
  };
}
