/**
 * PostgreSQL base backups on the backup server (topology `backup.host`), and restore drills that
 * prove a backup restores. Everything runs ON the backup host over SSH, as the rejoin's
 * pg_basebackup runs on a database host: pg_basebackup (tar, gzip, WAL streamed) into
 * <root>/<cluster>/<backupId>.partial, sizes and SHA-256 of its files computed there (stat,
 * sha256sum: streamed, never loaded into the worker), switchyard-manifest.json written last, then
 * the directory renamed to <backupId>: a complete directory always has its manifest.
 *
 * A drill restores a backup into <root>/<cluster>/.drill-<backupId> with its own postgresql.conf
 * and pg_hba.conf (unix socket in a directory only the OS user reaches, no TCP, no replication, no
 * archiving), starts it, runs the topology's verify queries and a row count per user table, stops
 * it and removes the scratch copy whatever happened; only a drill that passed writes drill.json.
 *
 * Commands are argument vectors quoted by shell.ts; the few scripts are fixed `sh -c` texts that
 * get every path and value as a positional argument. Passwords never appear: pg_basebackup reads
 * the replication login from the passfile (PGPASSFILE), the drill's server trusts its own socket.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig } from '../../topology/schema';
import {
  BACKUP_ID_RE,
  type PgBackupCreateInput,
  type PgBackupCreateResult,
  type PgBackupDeleteResult,
  type PgBackupEntry,
  type PgBackupFile,
  type PgBackupManifest,
  type PgBackupVerifyResult,
  type PgDrillInput,
  type PgDrillRecord,
  type PgDrillResult,
} from '../../contract/backup';
import { backupDir, checkBackupId, DRILL_FILE, MANIFEST_FILE, parseSha256sum, parseSizes, verifyOnHost } from './files';
import { checkedInt, configError } from '../resolver';
import { errorMessage, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import type { SshExecResult } from '../ssh/session';
import { DATABASE_BYTES_SQL } from '../postgres/status';
import { withPgClient } from '../postgres/connect';
import { brief, execArgv, mustExec, onHost, type OpenSession } from '../ssh/exec';
import { holdHostLock } from '../ssh/host-lock';
import { requireFreeSpace } from '../ssh/free-space';
import { readFile, readTextFiles, writeFileAtomic } from '../ssh/files';
import { commandLine } from '../ssh/quote';
import { formatBytes } from '../../contract/format';
import { outputTail } from '../postgres/shared';
import { confQuote } from '../postgres/standby-config';
import { LSN_RE, lsnToBigInt } from '../../contract/lsn';
import { Errors } from '../../contract/errors';
import { inCLocale, shellScript } from '../ssh/argv';

export const MANIFEST_FORMAT = 'switchyard-pg-backup/1';
const DEFAULT_CREATE_TIMEOUT_SECONDS = 6 * 3600;
const DEFAULT_DRILL_START_TIMEOUT_SECONDS = 600;
/** How long a drill waits while another drill of the same backup runs (they share its scratch copy). */
const DRILL_LOCK_WAIT_SECONDS = 6 * 3600;
const HASH_TIMEOUT_SECONDS = 6 * 3600;
const QUERY_TIMEOUT_SECONDS = 600;
/** Longest unix socket path used: the kernel's limit is 107 bytes. */
const MAX_SOCKET_PATH = 100;
/** What a verify query's result keeps (it lands in drill.json and in history). */
const MAX_QUERY_RESULT_CHARS = 2000;

// ---------------------------------------------------------------------------------------------
// Pure helpers (exported for the unit tests)

export interface BackupPaths {
  /** <root>/<cluster> */
  clusterDir: string;
  /** <root>/<cluster>/<backupId> */
  dir: string;
  /** <dir>.partial: where pg_basebackup writes. */
  partial: string;
  /** <root>/<cluster>/.drill-<backupId>: a drill's scratch copy. */
  scratch: string;
}

/**
 * Where a backup's parts live, refusing anything that would not sit directly in
 * <root>/<cluster>/ (the backup id is checked by checkBackupId; the cluster name must be one path
 * component).
 */
export function backupPaths(root: string, cluster: string, backupId: string): BackupPaths {
  const id = checkBackupId(backupId);
  if (id.endsWith('.partial'))
    throw configError(`a backup id may not end in ".partial" (that names an unfinished backup's directory); got ${JSON.stringify(id)}`);
  const clusterDir = clusterDirOf(root, cluster);
  const dir = backupDir(posix.dirname(clusterDir), cluster, id);
  if (posix.dirname(dir) !== clusterDir) throw configError(`backup ${id} of cluster ${cluster} would not lie directly in ${clusterDir}`);
  return { clusterDir, dir, partial: `${dir}.partial`, scratch: posix.join(clusterDir, `.drill-${id}`) };
}

/** <root>/<cluster>, refusing a root that is not absolute and a cluster name that is not one plain path component. */
export function clusterDirOf(root: string, cluster: string): string {
  if (typeof root !== 'string' || !posix.isAbsolute(root)) throw configError(`backup.root must be an absolute path, got ${JSON.stringify(root)}`);
  if (typeof cluster !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(cluster) || /^\.+$/.test(cluster))
    throw configError(`cluster name ${JSON.stringify(cluster)} cannot be a directory name`);
  const base = posix.normalize(root).replace(/\/+$/, '') || '/';
  return posix.join(base, cluster);
}

export interface WalRange {
  timeline: number;
  startLsn: string;
  endLsn: string;
}

export interface BackupManifestInfo {
  startLsn: string;
  endLsn: string;
  /** The timeline the backup ended on (that of the range holding the end LSN). */
  timeline: number;
  ranges: WalRange[];
  /** Only PostgreSQL 17+ writes it (manifest version 2). */
  systemIdentifier: string | null;
}

/**
 * What a backup's WAL range is, from PostgreSQL's own backup_manifest (JSON; "WAL-Ranges" lists
 * one range per timeline the backup spans, newest timeline first). Throws with the reason.
 */
export function parseBackupManifest(text: string): BackupManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`backup_manifest is not JSON: ${errorMessage(err)}`);
  }
  const o = doc as Record<string, unknown>;
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('backup_manifest is not a JSON object');
  const raw = o['WAL-Ranges'];
  if (!Array.isArray(raw) || raw.length === 0) throw new Error('backup_manifest has no WAL-Ranges');
  const ranges: WalRange[] = raw.map((r: unknown, i) => {
    const x = r as Record<string, unknown>;
    const tli = x?.Timeline;
    const start = x?.['Start-LSN'];
    const end = x?.['End-LSN'];
    if (
      typeof tli !== 'number' ||
      !Number.isInteger(tli) ||
      tli < 1 ||
      typeof start !== 'string' ||
      !LSN_RE.test(start) ||
      typeof end !== 'string' ||
      !LSN_RE.test(end)
    ) {
      throw new Error(`backup_manifest WAL-Ranges[${i}] is not { Timeline, Start-LSN, End-LSN }: ${JSON.stringify(r)}`);
    }
    return { timeline: tli, startLsn: start.toUpperCase(), endLsn: end.toUpperCase() };
  });
  const byStart = [...ranges].sort((a, b) =>
    lsnToBigInt(a.startLsn) < lsnToBigInt(b.startLsn) ? -1 : lsnToBigInt(a.startLsn) > lsnToBigInt(b.startLsn) ? 1 : a.timeline - b.timeline,
  );
  const byEnd = [...ranges].sort((a, b) =>
    lsnToBigInt(a.endLsn) < lsnToBigInt(b.endLsn) ? 1 : lsnToBigInt(a.endLsn) > lsnToBigInt(b.endLsn) ? -1 : b.timeline - a.timeline,
  );
  const sysid = o['System-Identifier'];
  return {
    startLsn: byStart[0].startLsn,
    endLsn: byEnd[0].endLsn,
    timeline: byEnd[0].timeline,
    ranges,
    systemIdentifier: typeof sysid === 'number' || typeof sysid === 'string' ? String(sysid) : null,
  };
}

function isIsoTime(v: unknown): v is string {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v));
}

/**
 * switchyard-manifest.json, checked field by field (and that it describes this cluster and
 * backup id). Throws with the reason.
 */
export function parseSwitchyardManifest(text: string, expect?: { cluster: string; backupId: string }): PgBackupManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${MANIFEST_FILE} is not JSON: ${errorMessage(err)}`);
  }
  const m = doc as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error(`${MANIFEST_FILE} is not a JSON object`);
  const bad = (field: string, want: string) => new Error(`${MANIFEST_FILE}: "${field}" should be ${want}, got ${JSON.stringify(m[field])?.slice(0, 100)}`);
  if (m.format !== MANIFEST_FORMAT) throw bad('format', JSON.stringify(MANIFEST_FORMAT));
  for (const k of ['cluster', 'backupId', 'sourceNode', 'pgVersion'] as const) if (typeof m[k] !== 'string' || m[k] === '') throw bad(k, 'a non-empty string');
  if (m.sourceRole !== 'primary' && m.sourceRole !== 'standby') throw bad('sourceRole', '"primary" or "standby"');
  for (const k of ['startedAt', 'finishedAt'] as const) if (!isIsoTime(m[k])) throw bad(k, 'an ISO time');
  for (const k of ['startLsn', 'endLsn'] as const) if (typeof m[k] !== 'string' || !LSN_RE.test(m[k] as string)) throw bad(k, 'an LSN');
  for (const k of ['timeline', 'pgMajor', 'totalBytes'] as const)
    if (typeof m[k] !== 'number' || !Number.isInteger(m[k]) || (m[k] as number) < 0) throw bad(k, 'a whole number');
  if (m.systemIdentifier !== null && typeof m.systemIdentifier !== 'string') throw bad('systemIdentifier', 'a string or null');
  if (m.databaseBytes !== null && (typeof m.databaseBytes !== 'number' || m.databaseBytes < 0)) throw bad('databaseBytes', 'a number or null');
  if (!Array.isArray(m.files) || m.files.length === 0) throw bad('files', 'a non-empty list');
  const files: PgBackupFile[] = m.files.map((f: unknown, i: number) => {
    const x = f as Record<string, unknown>;
    if (!x || typeof x.name !== 'string' || x.name === '' || x.name.includes('/') || x.name === '.' || x.name === '..')
      throw new Error(`${MANIFEST_FILE}: files[${i}].name is not a file name`);
    if (typeof x.bytes !== 'number' || !Number.isInteger(x.bytes) || x.bytes < 0) throw new Error(`${MANIFEST_FILE}: files[${i}].bytes is not a size`);
    if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(x.sha256)) throw new Error(`${MANIFEST_FILE}: files[${i}].sha256 is not a SHA-256`);
    return { name: x.name, bytes: x.bytes, sha256: x.sha256 };
  });
  if (expect && (m.cluster !== expect.cluster || m.backupId !== expect.backupId)) {
    throw new Error(
      `${MANIFEST_FILE} describes backup ${JSON.stringify(m.backupId)} of cluster ${JSON.stringify(m.cluster)}, not ${expect.backupId} of ${expect.cluster}`,
    );
  }
  return {
    format: MANIFEST_FORMAT,
    cluster: m.cluster as string,
    backupId: m.backupId as string,
    sourceNode: m.sourceNode as string,
    sourceRole: m.sourceRole,
    startedAt: m.startedAt as string,
    finishedAt: m.finishedAt as string,
    startLsn: m.startLsn as string,
    endLsn: m.endLsn as string,
    timeline: m.timeline as number,
    pgVersion: m.pgVersion as string,
    pgMajor: m.pgMajor as number,
    systemIdentifier: (m.systemIdentifier as string | null) ?? null,
    files,
    totalBytes: m.totalBytes as number,
    databaseBytes: (m.databaseBytes as number | null) ?? null,
  };
}

/** drill.json, or null when it is not a drill record of this backup. */
export function parseDrillRecord(text: string, backupId?: string): PgDrillRecord | null {
  try {
    const d = JSON.parse(text) as Record<string, unknown>;
    if (!d || typeof d !== 'object' || typeof d.backupId !== 'string' || !isIsoTime(d.provenAt)) return null;
    if (typeof d.rtoSeconds !== 'number' || typeof d.rpoSeconds !== 'number') return null;
    if (backupId !== undefined && d.backupId !== backupId) return null;
    return {
      backupId: d.backupId,
      provenAt: d.provenAt,
      workflowId: typeof d.workflowId === 'string' ? d.workflowId : '',
      rtoSeconds: d.rtoSeconds,
      rpoSeconds: d.rpoSeconds,
      rowCounts: d.rowCounts && typeof d.rowCounts === 'object' && !Array.isArray(d.rowCounts) ? (d.rowCounts as Record<string, number>) : {},
      queries: Array.isArray(d.queries) ? (d.queries as PgDrillRecord['queries']) : [],
    };
  } catch {
    return null;
  }
}

/** "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15; 9.6 → 9; null when unreadable. */
export function parsePgMajor(text: string): number | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(text) ?? /^\s*(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return null;
  return Number(m[1]);
}

/** One line per entry of `<root>/<cluster>`, as LIST_SH prints it. */
export interface ListedDir {
  name: string;
  modifiedAt: string | null;
  manifestBytes: number | null;
  drillBytes: number | null;
}

/** Parse LIST_SH's "D\t<name>\t<mtime>\t<manifest size|->\t<drill size|->" lines. */
export function parseListing(text: string): ListedDir[] {
  const out: ListedDir[] = [];
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length !== 5 || f[0] !== 'D') continue;
    const [, name, mtime, ms, ds] = f;
    if (!BACKUP_ID_RE.test(name) || name.endsWith('.partial')) continue;
    const secs = Number(mtime);
    const size = (s: string) => (/^\d+$/.test(s) ? Number(s) : null);
    out.push({
      name,
      modifiedAt: Number.isFinite(secs) && mtime !== '' ? new Date(secs * 1000).toISOString() : null,
      manifestBytes: size(ms),
      drillBytes: size(ds),
    });
  }
  return out;
}

/** Newest first: by the manifest's finish time when complete, else the directory's mtime; then by id. */
export function sortNewestFirst(entries: PgBackupEntry[]): PgBackupEntry[] {
  const when = (e: PgBackupEntry) => Date.parse(e.manifest?.finishedAt ?? e.modifiedAt ?? '') || 0;
  return [...entries].sort((a, b) => when(b) - when(a) || (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0));
}

/**
 * Settings a drill's own postgresql.conf decides: any line for them in the backup's
 * postgresql.auto.conf (which would override postgresql.conf) is removed, so the scratch copy
 * never listens, connects, archives or writes where the live cluster does.
 */
export const DRILL_OWNED_SETTINGS = [
  'listen_addresses',
  'port',
  'unix_socket_directories',
  'unix_socket_group',
  'unix_socket_permissions',
  'data_directory',
  'config_file',
  'hba_file',
  'ident_file',
  'external_pid_file',
  'primary_conninfo',
  'primary_slot_name',
  'promote_trigger_file',
  'restore_command',
  'archive_mode',
  'archive_command',
  'archive_library',
  'archive_cleanup_command',
  'recovery_end_command',
  'recovery_target',
  'recovery_target_action',
  'recovery_target_inclusive',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_time',
  'recovery_target_timeline',
  'recovery_target_xid',
  'hot_standby',
  'max_wal_senders',
  'synchronous_standby_names',
  'shared_buffers',
  'huge_pages',
  'logging_collector',
  'log_destination',
  'ssl',
  'fsync',
  'synchronous_commit',
  'cluster_name',
  'lc_messages',
];

/** postgresql.auto.conf without any line setting one of `keys` (any case, with or without "="). */
export function stripSettings(text: string, keys: readonly string[]): { text: string; removed: string[] } {
  const drop = new Set(keys.map((k) => k.toLowerCase()));
  const removed: string[] = [];
  const lines = text.split(/\r?\n/);
  const kept = lines.filter((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.$-]*)\s*(=|\s|$)/.exec(line);
    if (m && drop.has(m[1].toLowerCase())) {
      removed.push(m[1].toLowerCase());
      return false;
    }
    return true;
  });
  return { text: kept.join('\n'), removed: [...new Set(removed)] };
}

/** The scratch copy's postgresql.conf: unix socket only, in a directory only the OS user reaches. */
export function drillPostgresqlConf(o: { cluster: string; backupId: string; dataDir: string; socketDir: string; port: number }): string {
  return [
    `# switchyard restore drill of backup ${o.backupId} (cluster ${o.cluster}): a scratch copy,`,
    '# stopped and removed when the drill ends. Not joined to replication, no TCP, no archiving.',
    `listen_addresses = ''`,
    `port = ${o.port}`,
    `unix_socket_directories = ${confQuote(o.socketDir)}`,
    'unix_socket_permissions = 0700',
    `hba_file = ${confQuote(posix.join(o.dataDir, 'pg_hba.conf'))}`,
    `ident_file = ${confQuote(posix.join(o.dataDir, 'pg_ident.conf'))}`,
    `external_pid_file = ''`,
    'archive_mode = off',
    `restore_command = ''`,
    `primary_conninfo = ''`,
    `primary_slot_name = ''`,
    // Off: the server answers only once recovery has ended, which is what the RTO measures.
    'hot_standby = off',
    'shared_buffers = 32MB',
    'max_wal_senders = 0',
    `synchronous_standby_names = ''`,
    // A scratch copy that is removed afterwards needs no durability.
    'fsync = off',
    'synchronous_commit = off',
    'logging_collector = off',
    `log_destination = 'stderr'`,
    'ssl = off',
    `cluster_name = 'switchyard-drill'`,
    `lc_messages = 'C'`,
    '',
  ].join('\n');
}

/** Only the OS user, over the scratch socket (whose directory only that user can enter). */
export const DRILL_HBA = '# switchyard restore drill: the scratch copy answers its own unix socket only\nlocal all all trust\n';

/** The unix socket directory of a drill: the scratch dir, or a short one in /tmp when that path is too long for a socket. */
export function drillSocketDir(scratch: string, port: number): { dir: string; separate: boolean } {
  if (`${scratch}/.s.PGSQL.${port}`.length <= MAX_SOCKET_PATH) return { dir: scratch, separate: false };
  return { dir: `/tmp/switchyard-drill-${createHash('sha256').update(scratch).digest('hex').slice(0, 16)}`, separate: true };
}

/**
 * tablespace_map with every tablespace pointed into the scratch copy: "<oid> <path>" lines, the
 * path replaced by `where(oid)`.
 */
export function rewriteTablespaceMap(text: string, where: (oid: string) => string): { text: string; oids: string[] } {
  const oids: string[] = [];
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(\d+) /.exec(l);
      if (!m) throw new Error(`tablespace_map line is not "<oid> <path>": ${JSON.stringify(l.slice(0, 100))}`);
      oids.push(m[1]);
      return `${m[1]} ${where(m[1])}`;
    });
  return { text: lines.length ? `${lines.join('\n')}\n` : '', oids };
}

/**
 * One SQL answering a JSON object "schema.table" → row count for every user table (ordinary and
 * partitioned) of the database, with query_to_xml so it stays one statement.
 */
export const ROW_COUNTS_SQL = `SELECT coalesce(json_object_agg(t.name, t.n ORDER BY t.name), '{}'::json)
  FROM (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%') t`;

/** Parse ROW_COUNTS_SQL's answer. */
export function parseRowCounts(text: string): Record<string, number> {
  const v = JSON.parse(text.trim() || '{}') as unknown;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`row counts are not a JSON object: ${text.slice(0, 200)}`);
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`row count of ${k} is not a number: ${JSON.stringify(n)}`);
    out[k] = n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scripts run on the backup host (fixed text; every path and value a positional argument)

/** Every directory directly in $1 not starting with "." (no .drill-*), with its mtime and its manifest's and drill record's sizes. */
const LIST_SH = [
  '[ -d "$1" ] || exit 0',
  'cd -- "$1" || exit 1',
  'for d in *; do',
  '  [ -d "$d" ] || continue',
  '  case "$d" in *.partial) continue;; esac',
  '  m=$(stat -c %Y -- "$d") || m=',
  `  ms=-; [ -f "$d/${MANIFEST_FILE}" ] && ms=$(stat -L -c %s -- "$d/${MANIFEST_FILE}")`,
  `  ds=-; [ -f "$d/${DRILL_FILE}" ] && ds=$(stat -L -c %s -- "$d/${DRILL_FILE}")`,
  '  printf "D\\t%s\\t%s\\t%s\\t%s\\n" "$d" "$m" "$ms" "$ds"',
  'done',
].join('\n');
/**
 * Stop any pg_basebackup still writing into $1 (a killed attempt's, whose session is gone):
 * pg_basebackup processes (argv[0]) with exactly "$1" among their arguments; TERM, then KILL.
 * Prints their pids.
 */
const STOP_WRITERS_SH = [
  'pids=',
  'for p in /proc/[0-9]*; do',
  '  c=$(tr "\\000" "\\n" < "$p/cmdline" 2>/dev/null) || continue',
  '  [ "${p#/proc/}" = "$$" ] && continue',
  '  a0=$(printf "%s\\n" "$c" | head -n 1)',
  '  case "$a0" in pg_basebackup|*/pg_basebackup) ;; *) continue;; esac',
  '  printf "%s\\n" "$c" | grep -qxF -- "$1" && pids="$pids ${p#/proc/}"',
  'done',
  '[ -z "$pids" ] && exit 0',
  'kill -TERM $pids 2>/dev/null',
  'i=0; while [ $i -lt 20 ]; do alive=; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done; [ -z "$alive" ] && break; sleep 0.5; i=$((i+1)); done',
  'for p in $pids; do kill -KILL "$p" 2>/dev/null; done',
  'echo "stopped:$pids"',
].join('\n');
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

type RemoteText = { kind: 'nodir' } | { kind: 'missing' } | { kind: 'file'; text: string };

/** A small text file; tells a missing directory from a missing file (anything but a regular file counts as missing). */
async function readText(open: OpenSession, path: string): Promise<RemoteText> {
  const f = await readFile(open, path);
  if (f.kind === 'file') return { kind: 'file', text: f.content.toString('utf8') };
  return { kind: f.kind === 'nodir' ? 'nodir' : 'missing' };
}

/** Write a text file atomically, mode 0600. `tmp` (same file system) keeps the temp file out of a directory whose files are checked. */
function writeText(open: OpenSession, path: string, text: string, tmp?: string): Promise<void> {
  return writeFileAtomic(open, path, Buffer.from(text, 'utf8'), { tmp });
}

/** Sizes (find) and SHA-256 (sha256sum) of every regular file directly in `dir`, computed on the host. */
async function hashDir(open: OpenSession, dir: string, skip: ReadonlySet<string>): Promise<PgBackupFile[]> {
  const ls = await mustExec(open, ['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%f\\t%s\\n'], `listing ${dir}`);
  const sizes = parseSizes(ls.stdout);
  const names = [...sizes.keys()].filter((n) => !skip.has(n)).sort();
  if (names.length === 0) return [];
  const r = await mustExec(open, ['sha256sum', '--', ...names.map((n) => posix.join(dir, n))], `sha256sum in ${dir}`, HASH_TIMEOUT_SECONDS);
  const sums = parseSha256sum(r.stdout);
  return names.map((name) => {
    const sha256 = sums.get(name);
    if (!sha256) throw new Error(`sha256sum printed no checksum for ${posix.join(dir, name)} on ${open.name}`);
    return { name, bytes: sizes.get(name) as number, sha256 };
  });
}

// ---------------------------------------------------------------------------------------------

function backupConfig(call: Call, cluster: string): NonNullable<ClusterConfig['backup']> {
  const b = call.top.cluster(cluster).backup;
  if (!b) throw configError(`cluster "${cluster}" has no "backup" section (backup host, root, binDir) in the topology`);
  call.top.host(cluster, b.host);
  return b;
}

/** Every backup directory of the cluster (not unfinished ones, not drill scratch copies), newest first, with their manifests and drill records. */
async function listBackups(open: OpenSession, clusterDir: string): Promise<PgBackupEntry[]> {
  const ls = await mustExec(open, shellScript(LIST_SH, clusterDir), `listing ${clusterDir}`);
  const dirs = parseListing(ls.stdout);
  const want: { path: string; bytes: number }[] = [];
  for (const d of dirs) {
    if (d.manifestBytes !== null) want.push({ path: posix.join(clusterDir, d.name, MANIFEST_FILE), bytes: d.manifestBytes });
    if (d.drillBytes !== null) want.push({ path: posix.join(clusterDir, d.name, DRILL_FILE), bytes: d.drillBytes });
  }
  const texts = await readTextFiles(open, want);
  const entries = dirs.map((d): PgBackupEntry => {
    const dir = posix.join(clusterDir, d.name);
    const mt = texts.get(posix.join(dir, MANIFEST_FILE));
    let manifest: PgBackupManifest | null = null;
    if (mt !== undefined) {
      try {
        manifest = parseSwitchyardManifest(mt);
      } catch {
        manifest = null;
      }
    }
    const dt = texts.get(posix.join(dir, DRILL_FILE));
    return {
      backupId: d.name,
      dir,
      complete: manifest !== null,
      manifest,
      drill: dt !== undefined ? parseDrillRecord(dt, d.name) : null,
      modifiedAt: d.modifiedAt,
    };
  });
  return sortNewestFirst(entries);
}

/**
 * What a new base backup will take on the backup host, estimated from the newest earlier backup
 * that recorded both sizes: its compressed/uncompressed ratio applied to the databases' size now,
 * plus a quarter for safety. null when there is nothing to estimate from.
 */
export function estimateBackupBytes(databaseBytes: number | null, earlier: readonly PgBackupEntry[]): { bytes: number; from: string } | null {
  if (databaseBytes === null || !(databaseBytes > 0)) return null;
  const ref = earlier.find((e) => e.manifest && e.manifest.databaseBytes !== null && e.manifest.databaseBytes > 0 && e.manifest.totalBytes > 0);
  if (!ref?.manifest?.databaseBytes) return null;
  const ratio = ref.manifest.totalBytes / ref.manifest.databaseBytes;
  return {
    bytes: Math.ceil(databaseBytes * ratio * 1.25),
    from: `backup ${ref.backupId} (${formatBytes(ref.manifest.totalBytes)} for ${formatBytes(ref.manifest.databaseBytes)} of databases)`,
  };
}

function onBackupHost<T>(rt: Runtime, call: Call, cluster: string, fn: (open: OpenSession) => Promise<T>): Promise<T> {
  return onHost(rt, call, cluster, backupConfig(call, cluster).host, fn);
}

/** The complete backup's manifest: BackupNotFound / BackupCorrupt (non-retryable) when it has none that parses. */
async function readManifest(open: OpenSession, cluster: string, backupId: string, dir: string): Promise<PgBackupManifest> {
  const t = await readText(open, posix.join(dir, MANIFEST_FILE));
  if (t.kind === 'nodir')
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} of cluster ${cluster} does not exist: no directory ${dir} on ${open.name}`,
      Errors.BackupNotFound,
    );
  if (t.kind === 'missing') {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} of cluster ${cluster} is incomplete: ${dir} on ${open.name} has no ${MANIFEST_FILE}`,
      Errors.BackupNotFound,
    );
  }
  try {
    // Not tied to the directory's name: a backup copied under another id is still checked file by file.
    return parseSwitchyardManifest(t.text);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} of cluster ${cluster} (${dir} on ${open.name}) has an unusable manifest: ${errorMessage(err)}`,
      Errors.BackupCorrupt,
    );
  }
}

interface SourceFacts {
  pgVersion: string;
  pgMajor: number;
  systemIdentifier: string | null;
  inRecovery: boolean;
  databaseBytes: number | null;
}

/** pg_basebackup's words for a login that retrying will not fix. */
export const LOGIN_REFUSED_RE =
  /password authentication failed|no password supplied|fe_sendauth|no pg_hba\.conf entry|role "[^"]*" does not exist|must be superuser or replication role|is not permitted to log in/;

const SOURCE_SQL = `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
  (SELECT system_identifier::text FROM pg_control_system()) AS sysid, pg_is_in_recovery() AS rec`;

export function pgBackupActivities(rt: Runtime) {
  /** Read what the manifest records about the source, through the worker's connection. */
  const sourceFacts = async (call: Call, cluster: string, node: string): Promise<SourceFacts> => {
    const n = call.top.node(cluster, node);
    try {
      return await withPgClient(rt, call, cluster, node, async (client) => {
        const [r] = (await client.query(SOURCE_SQL)).rows;
        let databaseBytes: number | null = null;
        try {
          const [s] = (await client.query(DATABASE_BYTES_SQL)).rows;
          databaseBytes = s?.bytes === null || s?.bytes === undefined ? null : Number(s.bytes);
        } catch {
          databaseBytes = null; // sizes are informative; a login without the privilege still backs up
        }
        return {
          pgVersion: String(r.version),
          pgMajor: Math.floor(Number(r.num) / 10000),
          systemIdentifier: r.sysid === null || r.sysid === undefined ? null : String(r.sysid),
          inRecovery: r.rec === true,
          databaseBytes,
        };
      });
    } catch (err) {
      throw new Error(`cannot read version and system identifier of ${node} (${n.host}:${n.port}) before its backup: ${errorMessage(err)}`);
    }
  };

  /** Stop and remove a drill's scratch copy (and its separate socket dir). */
  const cleanScratch = async (
    open: OpenSession,
    scratch: string,
    dataDir: string,
    pgCtl: string,
    socket: { dir: string; separate: boolean },
  ): Promise<{ ok: boolean; detail: string }> => {
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
        detail: `removing the scratch copy ${scratch} on ${open.name} ${r.timedOut ? 'timed out' : `exited ${r.code ?? `by signal ${r.signal ?? '?'}`}`}${out ? `: ${out}` : ''}`,
      };
    }
    return { ok: true, detail: stopped ? `stopped the scratch server (pid ${stopped[1]}) and removed ${scratch}` : `removed ${scratch}` };
  };

  return {
    /**
     * A base backup of `source` on the backup host into <root>/<cluster>/<backupId>/ with its
     * switchyard-manifest.json. Idempotent: a complete backup with that id is returned as it is
     * (created:false); an unfinished one (<backupId>.partial) is thrown away and made again.
     */
    pgBackupCreate: rt.activity(async (input: PgBackupCreateInput, call): Promise<PgBackupCreateResult> => {
      const t0 = Date.now();
      const b = backupConfig(call, input.cluster);
      const paths = backupPaths(b.root, input.cluster, input.backupId);
      const n = call.top.node(input.cluster, input.source);
      const c = call.top.cluster(input.cluster);
      if (input.sourceRole !== 'primary' && input.sourceRole !== 'standby')
        throw configError(`sourceRole must be "primary" or "standby", got ${JSON.stringify(input.sourceRole)}`);
      const timeout = checkedInt(input.timeoutSeconds, 'timeoutSeconds', DEFAULT_CREATE_TIMEOUT_SECONDS, 1, 7 * 86400);
      const passfile = b.passfile ?? c.postgres.passfile;
      const log = { cluster: input.cluster, backupId: input.backupId, source: input.source };

      const existing = await onBackupHost(rt, call, input.cluster, async (open) => {
        const t = await readText(open, posix.join(paths.dir, MANIFEST_FILE));
        if (t.kind === 'nodir') return null;
        if (t.kind === 'missing') {
          throw ApplicationFailure.nonRetryable(
            `${paths.dir} on ${open.name} exists without ${MANIFEST_FILE}: it was not made by a completed switchyard backup (those are renamed into place only with their manifest); move it away or choose another backup id`,
            Errors.BackupCorrupt,
          );
        }
        try {
          return parseSwitchyardManifest(t.text, { cluster: input.cluster, backupId: input.backupId });
        } catch (err) {
          throw ApplicationFailure.nonRetryable(
            `backup ${input.backupId} already exists in ${paths.dir} on ${open.name} but its manifest is unusable: ${errorMessage(err)}`,
            Errors.BackupCorrupt,
          );
        }
      });
      if (existing) {
        return {
          backupId: input.backupId,
          dir: paths.dir,
          manifest: existing,
          created: false,
          durationMs: Date.now() - t0,
          detail: `backup ${input.backupId} was already complete in ${paths.dir} on ${b.host} (from ${existing.sourceNode}, finished ${existing.finishedAt}, ${existing.totalBytes} bytes): nothing made`,
        };
      }

      const facts = await sourceFacts(call, input.cluster, input.source);
      const role: 'primary' | 'standby' = facts.inRecovery ? 'standby' : 'primary';
      const notes: string[] = [];
      if (role !== input.sourceRole) notes.push(`${input.source} was asked for as the ${input.sourceRole} but is a ${role} now; the manifest records ${role}`);

      return onBackupHost(rt, call, input.cluster, async (open): Promise<PgBackupCreateResult> => {
        await mustExec(open, ['mkdir', '-p', '--', paths.clusterDir], `creating ${paths.clusterDir}`);
        const stopped = await mustExec(open, shellScript(STOP_WRITERS_SH, paths.partial), `stopping an earlier pg_basebackup into ${paths.partial}`, 60);
        if (stopped.stdout.trim()) notes.push(`stopped an earlier attempt's pg_basebackup (pids${stopped.stdout.trim().replace(/^stopped:/, '')})`);
        const leftover = await execArgv(open, ['test', '-e', paths.partial], 15);
        if (leftover.exitCode === 0) {
          await mustExec(open, ['rm', '-rf', '--', paths.partial], `removing the unfinished ${paths.partial}`, 600);
          notes.push(`removed an unfinished ${paths.partial}`);
        }
        // The backup host may serve more than backups (the sandbox's is an app host): never fill it.
        const estimate = estimateBackupBytes(facts.databaseBytes, await listBackups(open, paths.clusterDir));
        if (!estimate) notes.push(`free space not checked: the backup's size cannot be estimated (no earlier backup of ${input.cluster} recorded its sizes)`);
        else {
          notes.push(
            await requireFreeSpace(
              open,
              paths.clusterDir,
              estimate.bytes,
              (f) =>
                `not enough free space on ${open.name} for backup ${input.backupId} of ${input.cluster}: about ${formatBytes(estimate.bytes)} expected (${formatBytes(facts.databaseBytes ?? 0)} of databases, compressed as ${estimate.from}, plus a quarter) ` +
                `and a reserve of ${formatBytes(f.reserveBytes)}, but the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free. Nothing was written; free space there or let retention delete old backups (keepLast, maxAge).`,
            ),
          );
        }

        const startedAt = rt.now();
        heartbeat({ backupId: input.backupId, step: 'pg_basebackup' });
        rt.log.info('pg_basebackup starting', { ...log, dir: paths.partial });
        const env = ['env', 'LC_ALL=C', 'PGAPPNAME=switchyard-backup', 'PGCONNECT_TIMEOUT=10', ...(passfile ? [`PGPASSFILE=${passfile}`] : [])];
        const argv = [
          ...env,
          posix.join(b.binDir, 'pg_basebackup'),
          '-h',
          n.host,
          '-p',
          String(n.port),
          '-U',
          c.postgres.replication.user,
          '-D',
          paths.partial,
          '-F',
          't',
          '-z',
          '-Z',
          String(b.compressLevel),
          '-X',
          'stream',
          '-c',
          'fast',
          '-l',
          `switchyard ${input.backupId}`,
          '-v',
          '--no-password',
        ];
        const tb = Date.now();
        const r = await execArgv(open, argv, timeout);
        const basebackupMs = Date.now() - tb;
        if (r.exitCode !== 0) {
          await execArgv(open, ['rm', '-rf', '--', paths.partial], 600).catch(() => undefined);
          const out = outputTail(`${r.stdout}\n${r.stderr}`, 20);
          const msg = `pg_basebackup of ${input.source} (${n.host}:${n.port}) into ${paths.partial} on ${open.name} ${r.timedOut ? `timed out after ${timeout} s` : `exited ${r.exitCode ?? `by signal ${r.signal ?? '?'}`}`}:\n${out}`;
          // A login that will not work is for a person (passfile, pg_hba.conf, the role), not for a retry.
          if (LOGIN_REFUSED_RE.test(out))
            throw configError(`${msg}\n(check the replication login: backup.passfile or postgres.passfile on ${open.name}, and the source's pg_hba.conf)`);
          throw new Error(msg);
        }
        const finishedAt = rt.now();

        const pgManifest = await readText(open, posix.join(paths.partial, 'backup_manifest'));
        if (pgManifest.kind !== 'file') throw new Error(`pg_basebackup finished but ${paths.partial} on ${open.name} has no backup_manifest`);
        let wal: BackupManifestInfo;
        try {
          wal = parseBackupManifest(pgManifest.text);
        } catch (err) {
          throw new Error(`reading the backup's WAL range from ${paths.partial}/backup_manifest: ${errorMessage(err)}`);
        }
        if (wal.systemIdentifier && facts.systemIdentifier && wal.systemIdentifier !== facts.systemIdentifier) {
          throw new Error(`backup_manifest names system ${wal.systemIdentifier} but ${input.source} reported ${facts.systemIdentifier}`);
        }
        heartbeat({ backupId: input.backupId, step: 'sha256' });
        const files = await hashDir(open, paths.partial, new Set([MANIFEST_FILE, DRILL_FILE]));
        if (!files.some((f) => f.name === 'base.tar.gz'))
          throw new Error(
            `pg_basebackup finished but ${paths.partial} on ${open.name} has no base.tar.gz (files: ${files.map((f) => f.name).join(', ') || 'none'})`,
          );
        const manifest: PgBackupManifest = {
          format: MANIFEST_FORMAT,
          cluster: input.cluster,
          backupId: input.backupId,
          sourceNode: input.source,
          sourceRole: role,
          startedAt: startedAt.toISOString(),
          finishedAt: finishedAt.toISOString(),
          startLsn: wal.startLsn,
          endLsn: wal.endLsn,
          timeline: wal.timeline,
          pgVersion: facts.pgVersion,
          pgMajor: facts.pgMajor,
          systemIdentifier: facts.systemIdentifier ?? wal.systemIdentifier,
          files,
          totalBytes: files.reduce((s, f) => s + f.bytes, 0),
          databaseBytes: facts.databaseBytes,
        };
        await writeText(open, posix.join(paths.partial, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
        // Atomic: the complete directory appears with its manifest, or not at all.
        await mustExec(open, ['mv', '-T', '--', paths.partial, paths.dir], `renaming ${paths.partial} to ${paths.dir}`);
        const durationMs = Date.now() - t0;
        rt.log.info('base backup made', { ...log, dir: paths.dir, totalBytes: manifest.totalBytes, basebackupMs, durationMs });
        return {
          backupId: input.backupId,
          dir: paths.dir,
          manifest,
          created: true,
          durationMs,
          detail:
            `base backup of ${input.source} (${role}, PostgreSQL ${facts.pgVersion}) in ${paths.dir} on ${open.name}: ${files.length} files, ${manifest.totalBytes} bytes` +
            `${facts.databaseBytes !== null ? ` from ${facts.databaseBytes} bytes of databases` : ''}; WAL ${wal.startLsn} to ${wal.endLsn} on timeline ${wal.timeline}; ` +
            `pg_basebackup ${(basebackupMs / 1000).toFixed(1)} s, all ${(durationMs / 1000).toFixed(1)} s${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      });
    }),

    /** Every backup directory of the cluster (not unfinished ones, not drill scratch copies), newest first. */
    pgBackupList: rt.activity(async (input: { cluster: string }, call): Promise<PgBackupEntry[]> => {
      const b = backupConfig(call, input.cluster);
      return onBackupHost(rt, call, input.cluster, (open) => listBackups(open, clusterDirOf(b.root, input.cluster)));
    }),

    /** A backup's files against its manifest, checked on the backup host (sizes, SHA-256). */
    pgBackupVerify: rt.activity(async (input: { cluster: string; backupId: string }, call): Promise<PgBackupVerifyResult> => {
      const b = backupConfig(call, input.cluster);
      const paths = backupPaths(b.root, input.cluster, input.backupId);
      return onBackupHost(rt, call, input.cluster, async (open) => {
        const manifest = await readManifest(open, input.cluster, input.backupId, paths.dir);
        return verifyOnHost(open, paths.dir, input.backupId, manifest.files, HASH_TIMEOUT_SECONDS);
      });
    }),

    /** rm -rf of exactly <root>/<cluster>/<backupId>; deleting what is not there is success. */
    pgBackupDelete: rt.activity(async (input: { cluster: string; backupId: string }, call): Promise<PgBackupDeleteResult> => {
      const b = backupConfig(call, input.cluster);
      const paths = backupPaths(b.root, input.cluster, input.backupId);
      return onBackupHost(rt, call, input.cluster, async (open) => {
        const there = (await execArgv(open, ['test', '-e', paths.dir], 15)).exitCode === 0;
        if (!there)
          return { backupId: input.backupId, dir: paths.dir, deleted: false, detail: `${paths.dir} on ${open.name} does not exist: nothing to delete` };
        await mustExec(open, ['rm', '-rf', '--', paths.dir], `deleting ${paths.dir}`, 3600);
        if ((await execArgv(open, ['test', '-e', paths.dir], 15)).exitCode === 0) throw new Error(`${paths.dir} on ${open.name} is still there after rm -rf`);
        rt.log.info('backup deleted', { cluster: input.cluster, backupId: input.backupId, dir: paths.dir });
        return { backupId: input.backupId, dir: paths.dir, deleted: true, detail: `deleted ${paths.dir} on ${open.name}` };
      });
    }),

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
        const manifest = await readManifest(open, input.cluster, input.backupId, paths.dir);
        // One drill of a backup at a time (they share its scratch copy): a second one waits here.
        const lock = await holdHostLock(open, paths.dir, DRILL_LOCK_WAIT_SECONDS, `the drill of backup ${input.backupId}`);
        try {
          const notes = !lock.held
            ? [`${open.name} has no flock(1): drills of one backup at the same time are not kept apart`]
            : lock.waitedSeconds
              ? [`waited ${lock.waitedSeconds.toFixed(1)} s for another drill of this backup to finish`]
              : [];
          return await drillLocked(open, manifest, notes);
        } finally {
          await lock.release();
        }
      });

      /** The drill itself, under the backup's lock. */
      async function drillLocked(open: OpenSession, manifest: PgBackupManifest, notes: string[]): Promise<PgDrillResult> {
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
            `backup ${input.backupId} is of PostgreSQL ${manifest.pgMajor} but backup.binDir ${b.binDir} on ${open.name} holds PostgreSQL ${major} (${ver.stdout.trim()}): a drill needs the same major version`,
          );
        }

        // The scratch copy is the whole database, on the backup host: refuse before extracting when it would not fit.
        const need = Math.max(manifest.databaseBytes ?? 0, manifest.totalBytes);
        notes.push(
          await requireFreeSpace(
            open,
            paths.clusterDir,
            need,
            (f) =>
              `not enough free space on ${open.name} to drill backup ${input.backupId}: its scratch copy takes about ${formatBytes(need)} (${manifest.databaseBytes !== null && manifest.databaseBytes >= manifest.totalBytes ? "the databases' size when backed up" : 'at least the compressed size'}) ` +
              `plus a reserve of ${formatBytes(f.reserveBytes)}, but the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free. Nothing was extracted; the backup is not marked either way.`,
          ),
        );

        /** Extract, configure, start, query: what went wrong in words, or the record's measurements. */
        const attempt = async (): Promise<
          { failure: string } | { rtoSeconds: number; rowCounts: Record<string, number>; queries: PgDrillRecord['queries'] }
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
            drillPostgresqlConf({ cluster: input.cluster, backupId: input.backupId, dataDir, socketDir: socket.dir, port }),
          );
          await writeText(open, posix.join(dataDir, 'pg_hba.conf'), DRILL_HBA);
          await writeText(open, posix.join(dataDir, 'pg_ident.conf'), '');
          await mustExec(open, ['chmod', '0700', '--', scratch, dataDir], `chmod 0700 ${dataDir}`);

          heartbeat({ backupId: input.backupId, step: 'start' });
          const st = await execArgv(open, inCLocale([pgCtl, '-D', dataDir, '-l', logFile, '-w', '-t', String(startTimeout), 'start']), startTimeout + 15);
          if (st.exitCode !== 0) {
            const serverLog = (await execArgv(open, ['tail', '-n', '15', '--', logFile], 15)).stdout.trim();
            return {
              failure: `the restored copy of ${input.backupId} did not start on ${open.name} (pg_ctl start ${brief(st)})${serverLog ? `; its log ends:\n${serverLog}` : ''}`,
            };
          }
          const ping = await execArgv(open, psqlArgv('SELECT 1'), QUERY_TIMEOUT_SECONDS);
          if (ping.exitCode !== 0 || ping.stdout.trim() !== '1') {
            return {
              failure: `the restored copy of ${input.backupId} started but does not answer on its socket in ${socket.dir} (port ${port}): ${brief(ping)}`,
            };
          }
          const rtoSeconds = Math.round(Date.now() - t0) / 1000;

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
          return { rtoSeconds, rowCounts, queries };
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
          cleanedUp: true,
          detail:
            `backup ${input.backupId} restores: ${verify.detail}; answered after ${record.rtoSeconds.toFixed(1)} s (RTO), ${record.queries.length} verify quer${record.queries.length === 1 ? 'y' : 'ies'} passed, ` +
            `${Object.keys(record.rowCounts).length} tables with ${rows} rows; backup age ${record.rpoSeconds.toFixed(0)} s (RPO); ${cleanup.detail}; drill.json written${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      }
    }),
  };
}
