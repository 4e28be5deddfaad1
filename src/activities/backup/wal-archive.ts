/**
 * Continuous WAL archiving (topology `backup.archive`): pg_receivewal on the backup host, run
 * detached (setsid, its pid and the node it follows recorded beside the archive) so it outlives
 * the SSH session and the worker, streaming from the primary through its own replication slot
 * with --synchronous (it reports a position only once it is on disk there, so the lag the primary
 * shows is the archive's real RPO). The walArchive workflow calls walArchiveEnsure every few
 * seconds with the primary it sees: a dead archiver is started again, one that follows a node
 * that is no longer the primary is stopped and started against the new one (it resumes from the
 * newest segment in the directory and follows the timeline switch). Finished segments go to the
 * store too; retention prunes what no kept backup needs.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import {
  ARCHIVE_APPLICATION_NAME,
  parseSegmentName,
  segmentsBefore,
  WAL_DIR_NAME,
  type WalArchiveEnsureResult,
  type WalArchivePruneInput,
  type WalArchivePruneResult,
  type WalArchiveStatus,
  type WalArchiveUploadResult,
} from '../../contract/wal-archive';
import { Errors } from '../../contract/errors';
import { formatBytes } from '../../contract/format';
import { errorMessage, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { withPgClient } from '../postgres/connect';
import { execArgv, mustExec, type OpenSession } from '../ssh/exec';
import { shellScript } from '../ssh/argv';
import { parseSha256sum } from './files';
import { backupConfig, clusterDirOf, onBackupHost } from './pg-catalog';
import { deleteVersions, listKeys, listVersions, withStore, clusterPrefix, type Store } from './store-client';
import { uploadFile } from './store-backup';

const PID_FILE = '.receivewal.pid';
const SOURCE_FILE = '.receivewal.source';
const LOG_FILE = '.receivewal.log';

export interface WalPaths {
  dir: string;
  pid: string;
  source: string;
  log: string;
}

export function walPaths(root: string, cluster: string): WalPaths {
  const dir = posix.join(clusterDirOf(root, cluster), WAL_DIR_NAME);
  return { dir, pid: posix.join(dir, PID_FILE), source: posix.join(dir, SOURCE_FILE), log: posix.join(dir, LOG_FILE) };
}

/**
 * Is the recorded pg_receivewal alive (its argv[0] pg_receivewal and "$1" among its arguments)?
 * Prints "alive <pid> <source>" or "dead <source>".
 */
const PROBE_SH = [
  'pid=$(cat "$2" 2>/dev/null); src=$(cat "$3" 2>/dev/null)',
  'if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ]; then',
  '  c=$(tr "\\000" "\\n" < "/proc/$pid/cmdline" 2>/dev/null)',
  '  a0=$(printf "%s\\n" "$c" | head -n 1)',
  '  case "$a0" in pg_receivewal|*/pg_receivewal) printf "%s\\n" "$c" | grep -qxF -- "$1" && { echo "alive $pid $src"; exit 0; };; esac',
  'fi',
  'echo "dead $src"',
].join('\n');

/** Stop the recorded pg_receivewal of archive $1 (TERM, then KILL after 10 s); prints "stopped <pid>" or nothing. */
const STOP_SH = [
  PROBE_SH.replace(/echo "alive \$pid \$src"; exit 0;/, 'alive=$pid;').replace('echo "dead $src"', ':'),
  '[ -n "$alive" ] || exit 0',
  'kill -TERM "$alive" 2>/dev/null',
  'i=0; while [ $i -lt 40 ] && kill -0 "$alive" 2>/dev/null; do sleep 0.25; i=$((i+1)); done',
  'kill -KILL "$alive" 2>/dev/null',
  'echo "stopped $alive"',
].join('\n');

/**
 * Start pg_receivewal detached: $1 dir, $2 pid file, $3 source file, $4 source line, $5 log, then
 * its argv. Prints "started <pid>", or "died" and the log's tail when it exits at once.
 */
const START_SH = [
  'dir=$1; pidf=$2; srcf=$3; want=$4; logf=$5; shift 5',
  'mkdir -p -- "$dir" && chmod 700 -- "$dir" || exit 1',
  'printf "%s\\n" "$want" > "$srcf"',
  'setsid nohup "$@" >> "$logf" 2>&1 < /dev/null &',
  'pid=$!',
  'echo "$pid" > "$pidf"',
  'sleep 1',
  'if kill -0 "$pid" 2>/dev/null; then echo "started $pid"; else echo died; tail -n 5 -- "$logf"; exit 3; fi',
].join('\n');

/** Files of the archive: "<name>\t<size>\t<mtime>" (segments, .partial, history files). */
const LIST_SH = ['[ -d "$1" ] || exit 0', 'find "$1" -mindepth 1 -maxdepth 1 -type f ! -name ".*" -printf "%f\\t%s\\t%T@\\n"'].join('\n');

interface ArchiveFile {
  name: string;
  bytes: number;
  mtime: number;
}

function parseArchiveListing(text: string): ArchiveFile[] {
  return text
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length === 3)
    .map(([name, bytes, mtime]) => ({ name, bytes: Number(bytes), mtime: Number(mtime) }));
}

/** A finished segment or a timeline history file: what is copied to the store. */
const isFinished = (name: string) => /^[0-9A-F]{24}$/.test(name) || /^[0-9A-F]{8}\.history$/.test(name);

function archiveConfig(call: Call, cluster: string) {
  const b = backupConfig(call, cluster);
  if (!b.archive)
    throw ApplicationFailure.nonRetryable(
      `cluster "${cluster}" has no backup.archive in the topology: WAL archiving (point-in-time recovery) is not configured`,
      Errors.ConfigError,
    );
  return { b, archive: b.archive, paths: walPaths(b.root, cluster) };
}

async function probe(open: OpenSession, p: WalPaths): Promise<{ pid: number | null; source: string | null }> {
  const r = await mustExec(open, shellScript(PROBE_SH, p.dir, p.pid, p.source), `checking the archiver in ${p.dir}`);
  const m = /^(alive (\d+)|dead) ?(.*)$/.exec(r.stdout.trim());
  const source = m?.[3]?.trim() || null;
  return { pid: m?.[2] ? Number(m[2]) : null, source };
}

export function walArchiveActivities(rt: Runtime) {
  return {
    /** pg_receivewal streaming from `node` (started, or repointed from another node); idempotent. */
    walArchiveEnsure: rt.activity(async (input: { cluster: string; node: string }, call): Promise<WalArchiveEnsureResult> => {
      const { b, archive, paths } = archiveConfig(call, input.cluster);
      const c = call.top.cluster(input.cluster);
      const n = call.top.node(input.cluster, input.node);
      const passfile = b.passfile ?? c.postgres.passfile;
      const env = ['env', 'LC_ALL=C', `PGAPPNAME=${ARCHIVE_APPLICATION_NAME}`, 'PGCONNECT_TIMEOUT=10', ...(passfile ? [`PGPASSFILE=${passfile}`] : [])];
      const conn = ['-h', n.host, '-p', String(n.port), '-U', c.postgres.replication.user, '--no-password'];
      const tool = posix.join(b.binDir, 'pg_receivewal');
      const result = await onBackupHost(rt, call, input.cluster, async (open): Promise<WalArchiveEnsureResult> => {
        const now = await probe(open, paths);
        if (now.pid !== null && now.source === input.node)
          return {
            node: input.node,
            pid: now.pid,
            action: 'running',
            previous: null,
            droppedSlots: [],
            detail: `pg_receivewal (pid ${now.pid}) streams from ${input.node} into ${paths.dir} on ${open.name}`,
          };
        const notes: string[] = [];
        if (now.pid !== null) {
          const s = await mustExec(open, shellScript(STOP_SH, paths.dir, paths.pid, paths.source), `stopping the archiver in ${paths.dir}`, 30);
          notes.push(`stopped pg_receivewal (pid ${now.pid}) that followed ${now.source ?? '?'}${s.stdout.trim() ? '' : ' (it had already ended)'}`);
        }
        await mustExec(open, ['mkdir', '-p', '-m', '700', '--', paths.dir], `creating ${paths.dir}`);
        const slot = await execArgv(open, [...env, tool, '--create-slot', '--if-not-exists', '-S', archive.slot, ...conn], 60);
        if (slot.exitCode !== 0)
          throw new Error(
            `creating replication slot ${archive.slot} on ${input.node} (${n.host}:${n.port}) from ${open.name} failed: ${(slot.stderr || slot.stdout).trim().slice(-400)}`,
          );
        const argv = [...env, tool, '-D', paths.dir, '-S', archive.slot, '--synchronous', ...conn];
        const started = await execArgv(open, shellScript(START_SH, paths.dir, paths.pid, paths.source, input.node, paths.log, ...argv), 60);
        const m = /started (\d+)/.exec(started.stdout);
        if (started.exitCode !== 0 || !m)
          throw new Error(`pg_receivewal from ${input.node} into ${paths.dir} on ${open.name} did not stay up: ${started.stdout.trim().slice(-600)}`);
        return {
          node: input.node,
          pid: Number(m[1]),
          action: now.pid !== null || (now.source !== null && now.source !== input.node) ? 'repointed' : 'started',
          previous: now.source,
          droppedSlots: [],
          detail: `pg_receivewal (pid ${m[1]}) started from ${input.node} (slot ${archive.slot}) into ${paths.dir} on ${open.name}${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      });
      // The archive slot on any other node (a former primary) holds WAL there for nobody: dropped when it is idle.
      if (result.action !== 'running') {
        for (const other of Object.keys(c.postgres.nodes).filter((x) => x !== input.node)) {
          try {
            const dropped = await withPgClient(rt, call, input.cluster, other, async (pg) => {
              const r = await pg.query(
                `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active AND slot_type = 'physical'`,
                [archive.slot],
              );
              return r.rows.length > 0;
            });
            if (dropped) result.droppedSlots.push(other);
          } catch (err) {
            result.detail += `; the archive slot on ${other} was not checked (${errorMessage(err).slice(0, 200)}): drop it there once it answers`;
          }
        }
        if (result.droppedSlots.length) result.detail += `; dropped the idle archive slot on ${result.droppedSlots.join(', ')}`;
        rt.log.info('wal archiver started', { cluster: input.cluster, node: input.node, pid: result.pid, previous: result.previous });
      }
      return result;
    }),

    /** Is the archiver alive, streaming, and how far behind the primary it follows (bytes and seconds)? Unknown figures are null, with why. */
    walArchiveStatus: rt.activity(async (input: { cluster: string }, call): Promise<WalArchiveStatus> => {
      const { archive, paths } = archiveConfig(call, input.cluster);
      const problems: string[] = [];
      const host = await onBackupHost(rt, call, input.cluster, async (open) => {
        const p = await probe(open, paths);
        const ls = await mustExec(open, shellScript(LIST_SH, paths.dir), `listing ${paths.dir}`);
        const files = parseArchiveListing(ls.stdout);
        const log = p.pid === null ? (await execArgv(open, ['tail', '-n', '3', '--', paths.log], 15)).stdout.trim() : '';
        return { ...p, files, log };
      });
      const segments = host.files.filter((f) => parseSegmentName(f.name) !== null);
      const newest = segments.map((f) => f.name).sort((a, b) => (a.replace('.partial', '') < b.replace('.partial', '') ? 1 : -1))[0] ?? null;
      if (host.pid === null)
        problems.push(`pg_receivewal is not running on the backup host${host.log ? ` (its log ends: ${host.log.replace(/\n/g, ' | ').slice(-300)})` : ''}`);
      let streaming = false;
      let primaryLsn: string | null = null;
      let flushLsn: string | null = null;
      let lagBytes: number | null = null;
      let lagSeconds: number | null = null;
      if (host.source) {
        try {
          const row = await withPgClient(rt, call, input.cluster, host.source, async (pg) => {
            const r = await pg.query(
              `SELECT pg_is_in_recovery() AS rec,
                      CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS cur,
                      s.flush_lsn::text AS flush,
                      CASE WHEN pg_is_in_recovery() OR s.flush_lsn IS NULL THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.flush_lsn)::bigint END AS lag,
                      extract(epoch FROM s.flush_lag)::float8 AS flush_lag,
                      (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $2) AS restart
                 FROM (SELECT 1) one
                 LEFT JOIN LATERAL (SELECT flush_lsn, flush_lag FROM pg_stat_replication WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1) s ON true`,
              [ARCHIVE_APPLICATION_NAME, archive.slot],
            );
            return r.rows[0] as {
              rec: boolean;
              cur: string | null;
              flush: string | null;
              lag: string | number | null;
              flush_lag: number | null;
              restart: string | null;
            };
          });
          if (row.rec) problems.push(`${host.source}, which the archiver follows, is a standby now: the walArchive workflow repoints it to the primary`);
          primaryLsn = row.cur;
          flushLsn = row.flush;
          streaming = row.flush !== null;
          if (!streaming) problems.push(`${host.source} shows no archiver connection (${ARCHIVE_APPLICATION_NAME}) in pg_stat_replication`);
          if (streaming && row.lag !== null && !row.rec) {
            lagBytes = Math.max(0, Number(row.lag));
            lagSeconds = row.flush_lag !== null ? Math.round(row.flush_lag * 1000) / 1000 : lagBytes === 0 ? 0 : null;
            if (lagSeconds === null) problems.push(`${lagBytes} bytes behind but the primary reports no flush lag time yet`);
          }
        } catch (err) {
          problems.push(`cannot read the archive's position on ${host.source}: ${errorMessage(err).slice(0, 300)}`);
        }
      } else problems.push('the archiver was never started (no source recorded): start the walArchive workflow (`switchyard archive <cluster>`)');
      const detail =
        lagBytes !== null
          ? `pg_receivewal (pid ${host.pid}) streams from ${host.source}: ${lagBytes} bytes${lagSeconds !== null ? `, ${lagSeconds} s` : ''} behind; newest segment ${newest ?? 'none'}`
          : `archive lag unknown: ${problems.join('; ')}`;
      return {
        cluster: input.cluster,
        running: host.pid !== null,
        pid: host.pid,
        source: host.source,
        streaming,
        primaryLsn,
        flushLsn,
        lagBytes,
        lagSeconds,
        newest,
        segments: segments.filter((f) => !f.name.endsWith('.partial')).length,
        problems,
        detail,
      };
    }),

    walArchiveStop: rt.activity(async (input: { cluster: string }, call): Promise<{ stopped: boolean; detail: string }> => {
      const { paths } = archiveConfig(call, input.cluster);
      return onBackupHost(rt, call, input.cluster, async (open) => {
        const r = await mustExec(open, shellScript(STOP_SH, paths.dir, paths.pid, paths.source), `stopping the archiver in ${paths.dir}`, 30);
        const m = /stopped (\d+)/.exec(r.stdout);
        return { stopped: m !== null, detail: m ? `stopped pg_receivewal (pid ${m[1]}) on ${open.name}` : `no archiver was running on ${open.name}` };
      });
    }),

    /** Finished segments and history files the store does not have yet, each checked against its SHA-256 computed on the backup host. */
    walArchiveUpload: rt.activity(async (input: { cluster: string }, call): Promise<WalArchiveUploadResult> => {
      const { b, paths } = archiveConfig(call, input.cluster);
      if (!b.store) return { uploaded: [], stored: 0, bytes: 0, detail: 'no backup.store: the archive stays on the backup host only' };
      return onBackupHost(rt, call, input.cluster, (open) =>
        withStore(rt, call, input.cluster, async (store) => {
          const prefix = `${clusterPrefix(store.cfg, input.cluster)}wal/`;
          const have = new Set((await listKeys(store, prefix)).map((k) => k.slice(prefix.length)));
          const ls = await mustExec(open, shellScript(LIST_SH, paths.dir), `listing ${paths.dir}`);
          const todo = parseArchiveListing(ls.stdout).filter((f) => isFinished(f.name) && !have.has(f.name));
          const uploaded: string[] = [];
          let bytes = 0;
          for (let i = 0; i < todo.length; i += 64) {
            const batch = todo.slice(i, i + 64);
            const sums = parseSha256sum(
              (await mustExec(open, ['sha256sum', '--', ...batch.map((f) => posix.join(paths.dir, f.name))], 'hashing WAL segments', 600)).stdout,
            );
            for (const f of batch) {
              const sha256 = sums.get(f.name);
              if (!sha256) throw new Error(`sha256sum printed nothing for ${posix.join(paths.dir, f.name)} on ${open.name}`);
              await uploadFile(open, store, posix.join(paths.dir, f.name), `${prefix}${f.name}`, { name: f.name, bytes: f.bytes, sha256 }, () =>
                heartbeat({ wal: f.name }),
              );
              uploaded.push(f.name);
              bytes += f.bytes;
            }
          }
          return {
            uploaded,
            stored: have.size,
            bytes,
            detail: uploaded.length
              ? `copied ${uploaded.length} WAL file(s) (${formatBytes(bytes)}) to ${store.url(prefix)}; ${have.size} were there already`
              : `${store.url(prefix)} has every finished WAL file (${have.size})`,
          };
        }),
      );
    }),

    /** Delete the segments no kept base backup needs (before the oldest kept backup's start), on the backup host and in the store. */
    walArchivePrune: rt.activity(async (input: WalArchivePruneInput, call): Promise<WalArchivePruneResult> => {
      const { b, paths } = archiveConfig(call, input.cluster);
      if (!input.keepFrom) return { deleted: [], storeDeleted: 0, kept: 0, detail: 'no complete base backup is kept: the whole WAL archive is kept' };
      const keepFrom = input.keepFrom;
      return onBackupHost(rt, call, input.cluster, async (open) => {
        const ls = await mustExec(open, shellScript(LIST_SH, paths.dir), `listing ${paths.dir}`);
        const names = parseArchiveListing(ls.stdout).map((f) => f.name);
        const doomed = segmentsBefore(names, keepFrom);
        let storeDeleted = 0;
        if (!input.dryRun) {
          for (let i = 0; i < doomed.length; i += 200) {
            await mustExec(open, ['rm', '-f', '--', ...doomed.slice(i, i + 200).map((n) => posix.join(paths.dir, n))], `pruning ${paths.dir}`, 300);
          }
          if (b.store) storeDeleted = await withStore(rt, call, input.cluster, (store) => pruneStored(store, input.cluster, keepFrom));
        }
        const verb = input.dryRun ? 'would delete' : 'deleted';
        return {
          deleted: doomed,
          storeDeleted,
          kept: names.length - doomed.length,
          detail:
            `${verb} ${doomed.length} WAL segment(s) older than the oldest kept backup (start ${keepFrom.lsn}, timeline ${keepFrom.timeline}); kept ${names.length - doomed.length}` +
            `${storeDeleted ? `; ${storeDeleted} object version(s) deleted from the store` : ''}`,
        };
      });
    }),
  };
}

async function pruneStored(store: Store, cluster: string, keepFrom: { lsn: string }): Promise<number> {
  const prefix = `${clusterPrefix(store.cfg, cluster)}wal/`;
  const versions = await listVersions(store, prefix);
  const doomed = new Set(segmentsBefore([...new Set(versions.map((v) => v.key.slice(prefix.length)))], keepFrom));
  return deleteVersions(
    store,
    versions.filter((v) => doomed.has(v.key.slice(prefix.length))),
  );
}
