/**
 * What PostgreSQL base backups lie on the backup server (topology `backup.host`) and how to reach
 * them: <root>/<cluster>/<backupId>/ with switchyard-manifest.json written last (a complete
 * directory always has its manifest), drill.json once a drill proved it; listing, verifying and
 * deleting them (pgBackupList, pgBackupVerify, pgBackupDelete), and the backup host access the
 * create and drill activities share.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig } from '../../topology/schema';
import { BACKUP_ID_RE, type PgBackupDeleteResult, type PgBackupEntry, type PgBackupManifest, type PgBackupVerifyResult } from '../../contract/backup';
import { backupDir, checkBackupId, DRILL_FILE, MANIFEST_FILE, verifyOnHost } from './files';
import { configError } from '../resolver';
import { errorMessage } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { execArgv, mustExec, onHost, type OpenSession } from '../ssh/exec';
import { readFile, readTextFiles, writeFileAtomic } from '../ssh/files';
import { holdHostLock, LockBusyError, type HostLock } from '../ssh/host-lock';
import { Errors } from '../../contract/errors';
import { shellScript } from '../ssh/argv';
import { deleteStored, listStored, mergeCatalogs } from './store-catalog';
import { withStore } from './store-client';

export { MANIFEST_FORMAT, parseDrillRecord, parseStoreRecord, parseSwitchyardManifest, sortNewestFirst } from './manifest';
import { parseDrillRecord, parseSwitchyardManifest, sortNewestFirst } from './manifest';

/** Bound on hashing or extracting a whole backup on the backup host. */
export const HASH_TIMEOUT_SECONDS = 6 * 3600;

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
  /** <root>/<cluster>/.fetch-<backupId>.lock: held while the backup is downloaded from the store. */
  fetchLock: string;
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
  return {
    clusterDir,
    dir,
    partial: `${dir}.partial`,
    scratch: posix.join(clusterDir, `.drill-${id}`),
    fetchLock: posix.join(clusterDir, `.fetch-${id}.lock`),
  };
}

/** <root>/<cluster>, refusing a root that is not absolute and a cluster name that is not one plain path component. */
export function clusterDirOf(root: string, cluster: string): string {
  if (typeof root !== 'string' || !posix.isAbsolute(root)) throw configError(`backup.root must be an absolute path, got ${JSON.stringify(root)}`);
  if (typeof cluster !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(cluster) || /^\.+$/.test(cluster))
    throw configError(`cluster name ${JSON.stringify(cluster)} cannot be a directory name`);
  const base = posix.normalize(root).replace(/\/+$/, '') || '/';
  return posix.join(base, cluster);
}

/**
 * What a backup takes once extracted: the databases' size when the backup recorded it, else its
 * compressed size (a lower bound), with which of the two it is in words.
 */
export function extractedBytes(m: Pick<PgBackupManifest, 'totalBytes' | 'databaseBytes'>): { bytes: number; basis: string } {
  const bytes = Math.max(m.databaseBytes ?? 0, m.totalBytes);
  const basis = m.databaseBytes !== null && m.databaseBytes >= m.totalBytes ? "the databases' size when backed up" : 'at least the compressed size';
  return { bytes, basis };
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

// ---------------------------------------------------------------------------------------------
// On the backup host

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

export type RemoteText = { kind: 'nodir' } | { kind: 'missing' } | { kind: 'file'; text: string };

/** A small text file; tells a missing directory from a missing file (anything but a regular file counts as missing). */
export async function readText(open: OpenSession, path: string): Promise<RemoteText> {
  const f = await readFile(open, path);
  if (f.kind === 'file') return { kind: 'file', text: f.content.toString('utf8') };
  return { kind: f.kind === 'nodir' ? 'nodir' : 'missing' };
}

/** Write a text file atomically, mode 0600. `tmp` (same file system) keeps the temp file out of a directory whose files are checked. */
export function writeText(open: OpenSession, path: string, text: string, tmp?: string): Promise<void> {
  return writeFileAtomic(open, path, Buffer.from(text, 'utf8'), { tmp });
}

/** The cluster's backup section (host, root, binDir), its host checked against the topology. */
export function backupConfig(call: Call, cluster: string): NonNullable<ClusterConfig['backup']> {
  const b = call.top.cluster(cluster).backup;
  if (!b) throw configError(`cluster "${cluster}" has no "backup" section (backup host, root, binDir) in the topology`);
  call.top.host(cluster, b.host);
  return b;
}

export function onBackupHost<T>(rt: Runtime, call: Call, cluster: string, fn: (open: OpenSession) => Promise<T>): Promise<T> {
  return onHost(rt, call, cluster, backupConfig(call, cluster).host, fn);
}

/** Every backup directory of the cluster (not unfinished ones, not drill scratch copies), newest first, with their manifests and drill records. */
export async function listBackups(open: OpenSession, clusterDir: string): Promise<PgBackupEntry[]> {
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

/** The complete backup's manifest: BackupNotFound / BackupCorrupt (non-retryable) when it has none that parses. */
export async function readManifest(open: OpenSession, cluster: string, backupId: string, dir: string): Promise<PgBackupManifest> {
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

export function pgBackupCatalogActivities(rt: Runtime) {
  return {
    /** Every backup directory of the cluster (not unfinished ones, not drill scratch copies), newest first. */
    pgBackupList: rt.activity(async (input: { cluster: string }, call): Promise<PgBackupEntry[]> => {
      const b = backupConfig(call, input.cluster);
      const host = await onBackupHost(rt, call, input.cluster, (open) => listBackups(open, clusterDirOf(b.root, input.cluster)));
      if (!b.store) return host;
      // A store that cannot be listed fails the call (retried): a catalog without it would count its backups as gone.
      const known = new Map(host.map((h) => [h.backupId, h]));
      const stored = await withStore(rt, call, input.cluster, (store) => listStored(store, input.cluster, known)).catch((err: unknown) => {
        throw new Error(`cannot list the backups in the store s3://${b.store?.bucket}/${b.store?.prefix}${input.cluster}/: ${errorMessage(err)}`);
      });
      return mergeCatalogs(host, stored);
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
        // A drill or a restore holds the manifest shared while it reads the backup, and the fetch lock while it
        // downloads it from the store: then it is kept, and says why. (A partial backup has no manifest: nothing reads it.)
        const manifest = posix.join(paths.dir, MANIFEST_FILE);
        const fetchLock = paths.fetchLock;
        const held: HostLock[] = [];
        const release = async () => {
          for (const l of held.splice(0)) await l.release();
        };
        try {
          for (const path of [fetchLock, manifest])
            if ((await execArgv(open, ['test', '-f', path], 15)).exitCode === 0)
              held.push(await holdHostLock(open, path, 0, `deleting backup ${input.backupId}`));
        } catch (err) {
          await release();
          if (!(err instanceof LockBusyError)) throw err;
          return {
            backupId: input.backupId,
            dir: paths.dir,
            deleted: false,
            busy: true,
            detail: `skipped ${paths.dir} on ${open.name}: a drill or a restore is reading it right now (it holds the backup's lock); the next retention run deletes it`,
          };
        }
        const done: string[] = [];
        let storeDeleted: number | undefined;
        try {
          if (there) {
            await mustExec(open, ['rm', '-rf', '--', paths.dir], `deleting ${paths.dir}`, 3600);
            if ((await execArgv(open, ['test', '-e', paths.dir], 15)).exitCode === 0)
              throw new Error(`${paths.dir} on ${open.name} is still there after rm -rf`);
            done.push(`deleted ${paths.dir} on ${open.name}`);
          }
          if (b.store) {
            storeDeleted = await withStore(rt, call, input.cluster, (store) => deleteStored(store, input.cluster, input.backupId));
            if (storeDeleted > 0)
              done.push(`deleted ${storeDeleted} object version(s) under s3://${b.store.bucket}/${b.store.prefix}${input.cluster}/${input.backupId}/`);
          }
          await execArgv(open, ['rm', '-f', '--', fetchLock], 15);
        } finally {
          await release();
        }
        if (!done.length)
          return {
            backupId: input.backupId,
            dir: paths.dir,
            deleted: false,
            ...(storeDeleted !== undefined ? { storeDeleted } : {}),
            detail: `${paths.dir} on ${open.name} does not exist${b.store ? ' and the store holds nothing of it' : ''}: nothing to delete`,
          };
        rt.log.info('backup deleted', { cluster: input.cluster, backupId: input.backupId, dir: paths.dir, storeDeleted });
        return { backupId: input.backupId, dir: paths.dir, deleted: true, ...(storeDeleted !== undefined ? { storeDeleted } : {}), detail: done.join('; ') };
      });
    }),
  };
}
