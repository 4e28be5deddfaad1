/**
 * Making a PostgreSQL base backup on the backup server (pgBackupCreate), run there over SSH as the rejoin's pg_basebackup
 * runs on a database host: pg_basebackup (tar, gzip, WAL streamed) into <backupId>.partial, sizes and SHA-256 computed on
 * the host (never loaded into the worker), switchyard-manifest.json written last, then the directory renamed to
 * <backupId>: a complete directory always has its manifest. The replication login comes from the passfile (PGPASSFILE).
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { PgBackupCreateInput, PgBackupCreateResult, PgBackupEntry, PgBackupFile, PgBackupManifest } from '../../contract/backup';
import { DRILL_FILE, MANIFEST_FILE, parseSha256sum, parseSizes, STORE_FILE } from './files';
import {
  backupConfig,
  backupPaths,
  HASH_TIMEOUT_SECONDS,
  listBackups,
  MANIFEST_FORMAT,
  onBackupHost,
  parseSwitchyardManifest,
  readText,
  writeText,
} from './pg-catalog';
import { checkedInt, configError } from '../resolver';
import { errorMessage, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { DATABASE_BYTES_SQL } from '../postgres/status';
import { withPgClient } from '../postgres/connect';
import { execArgv, mustExec, type OpenSession } from '../ssh/exec';
import { requireFreeSpace } from '../ssh/free-space';
import { formatBytes } from '../../contract/format';
import { outputTail } from '../postgres/shared';
import { LSN_RE, lsnToBigInt } from '../../contract/lsn';
import { Errors } from '../../contract/errors';
import { shellScript } from '../ssh/argv';

const DEFAULT_CREATE_TIMEOUT_SECONDS = 6 * 3600;

// ---------------------------------------------------------------------------------------------
// Pure helpers (exported for the unit tests)

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

/** pg_basebackup's words for a login that retrying will not fix. */
export const LOGIN_REFUSED_RE = new RegExp(
  [
    'password authentication failed',
    'no password supplied',
    'fe_sendauth',
    'no pg_hba\\.conf entry',
    'role "[^"]*" does not exist',
    'must be superuser or replication role',
    'is not permitted to log in',
  ].join('|'),
);

// ---------------------------------------------------------------------------------------------
// On the backup host

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
  'i=0; while [ $i -lt 20 ]; do alive=; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done; ' +
    '[ -z "$alive" ] && break; sleep 0.5; i=$((i+1)); done',
  'for p in $pids; do kill -KILL "$p" 2>/dev/null; done',
  'echo "stopped:$pids"',
].join('\n');

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

interface SourceFacts {
  pgVersion: string;
  pgMajor: number;
  systemIdentifier: string | null;
  inRecovery: boolean;
  databaseBytes: number | null;
}

const SOURCE_SQL = `SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num,
  (SELECT system_identifier::text FROM pg_control_system()) AS sysid, pg_is_in_recovery() AS rec`;

export function pgBackupCreateActivities(rt: Runtime) {
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
            `${paths.dir} on ${open.name} exists without ${MANIFEST_FILE}: it was not made by a completed switchyard backup ` +
              `(those are renamed into place only with their manifest); move it away or choose another backup id`,
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
          detail:
            `backup ${input.backupId} was already complete in ${paths.dir} on ${b.host} ` +
            `(from ${existing.sourceNode}, finished ${existing.finishedAt}, ${existing.totalBytes} bytes): nothing made`,
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
                `not enough free space on ${open.name} for backup ${input.backupId} of ${input.cluster}: about ${formatBytes(estimate.bytes)} expected ` +
                `(${formatBytes(facts.databaseBytes ?? 0)} of databases, compressed as ${estimate.from}, plus a quarter) ` +
                `and a reserve of ${formatBytes(f.reserveBytes)}, but the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free. ` +
                `Nothing was written; free space there or let retention delete old backups (keepLast, maxAge).`,
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
          const msg =
            `pg_basebackup of ${input.source} (${n.host}:${n.port}) into ${paths.partial} on ${open.name} ` +
            `${r.timedOut ? `timed out after ${timeout} s` : `exited ${r.exitCode ?? `by signal ${r.signal ?? '?'}`}`}:\n${out}`;
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
        const files = await hashDir(open, paths.partial, new Set([MANIFEST_FILE, DRILL_FILE, STORE_FILE]));
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
            `base backup of ${input.source} (${role}, PostgreSQL ${facts.pgVersion}) in ${paths.dir} on ${open.name}: ` +
            `${files.length} files, ${manifest.totalBytes} bytes` +
            `${facts.databaseBytes !== null ? ` from ${facts.databaseBytes} bytes of databases` : ''}; ` +
            `WAL ${wal.startLsn} to ${wal.endLsn} on timeline ${wal.timeline}; ` +
            `pg_basebackup ${(basebackupMs / 1000).toFixed(1)} s, all ${(durationMs / 1000).toFixed(1)} s${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      });
    }),
  };
}
