/**
 * The pure part of restoring a base backup onto a database node (pg-restore.ts): where it is
 * staged, which manifests a restore accepts, the marker a restored data directory carries, and
 * how much room staging takes.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { PgBackupFile, PgBackupManifest, PgRestoreNodeInput } from '../../contract/backup';
import { checkBackupId, MANIFEST_FILE } from './files';
import { extractedBytes, parseSwitchyardManifest } from './pg-catalog';
import { errorMessage } from '../activity-context';
import { freeSpaceReserve } from '../ssh/free-space';
import { formatBytes } from '../../contract/format';
import { Errors } from '../../contract/errors';

/** Written into a restored data directory: which backup it came from (read by a repeated swap). */
export const RESTORED_MARKER = 'switchyard-restored-from';
/** The temp name of a file being copied into the staging directory. */
export const PART_SUFFIX = '.switchyard-part';
export const BASE_TAR = 'base.tar.gz';
export const WAL_TAR = 'pg_wal.tar.gz';

/** <dataDir>.switchyard-restore-<backupId>: beside the data directory, on the same filesystem. */
export function stagingDirName(dataDir: string, backupId: string): string {
  return `${dataDir.replace(/\/+$/, '')}.switchyard-restore-${checkBackupId(backupId)}`;
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

/**
 * switchyard-manifest.json for the backup asked for (checked field by field by the backup's own
 * parser), plus what a restore needs of it; throws BackupCorrupt / BackupUnsupported.
 */
export function parseRestorableManifest(text: string, cluster: string, backupId: string, where: string): PgBackupManifest {
  const bad = (why: string) => ApplicationFailure.nonRetryable(`backup ${backupId}: ${MANIFEST_FILE} at ${where} ${why}`, Errors.BackupCorrupt);
  let m: PgBackupManifest;
  try {
    m = parseSwitchyardManifest(text, { cluster, backupId });
  } catch (err) {
    throw bad(`is unusable: ${errorMessage(err)}`);
  }
  const seen = new Set<string>();
  for (const f of m.files) {
    // Names become paths on the node's host: nothing but a plain file name, never a copy's temp name.
    if (!SAFE_NAME.test(f.name) || f.name.endsWith(PART_SUFFIX)) throw bad(`lists a file with an unusable name: ${JSON.stringify(f.name)}`);
    if (seen.has(f.name)) throw bad(`lists ${f.name} twice`);
    seen.add(f.name);
  }
  for (const need of [BASE_TAR, WAL_TAR])
    if (!seen.has(need)) throw bad(`does not list ${need} (a base backup in tar format with its WAL: pg_basebackup -F t -z -X stream)`);
  const tablespaces = [...seen].filter((x) => /^\d+\.tar(\.gz)?$/.test(x));
  if (tablespaces.length) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} has tablespace archives (${tablespaces.join(', ')}): restoring tablespaces is not supported; restore it by hand`,
      Errors.BackupUnsupported,
    );
  }
  return m;
}

export interface RestoredMarker {
  backupId: string;
  cluster: string | null;
  node: string | null;
  restoredAt: string | null;
  movedAside: string | null;
}

/** The marker's "key=value" lines; a later non-empty moved-aside wins. */
export function parseMarker(text: string): RestoredMarker | null {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0 || line.startsWith('#')) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'moved-aside' && v === '' && kv.has(k)) continue;
    kv.set(k, v);
  }
  const backupId = kv.get('backup');
  if (!backupId) return null;
  const opt = (k: string) => (kv.get(k) ? (kv.get(k) as string) : null);
  return { backupId, cluster: opt('cluster'), node: opt('node'), restoredAt: opt('restored-at'), movedAside: opt('moved-aside') };
}

export function markerText(input: PgRestoreNodeInput, at: Date): string[] {
  return [
    '# written by switchyard: this data directory was restored from a base backup',
    `backup=${input.backupId}`,
    `cluster=${input.cluster}`,
    `node=${input.node}`,
    `restored-at=${at.toISOString()}`,
  ];
}

/**
 * What staging a backup beside a node's data directory takes from that filesystem: the files still
 * to copy, then their extraction (the swap extracts next to them; the data directory is only
 * renamed). The extraction is estimated by the databases' size when the backup recorded it,
 * else by the compressed size (a lower bound); a reserve stays free for the server that runs there.
 */
export function restoreSpaceNeeded(
  m: Pick<PgBackupManifest, 'totalBytes' | 'databaseBytes'>,
  toCopyBytes: number,
): { needBytes: number; reserveBytes: number; how: string } {
  const extract = extractedBytes(m);
  const needBytes = toCopyBytes + extract.bytes;
  const reserveBytes = freeSpaceReserve(needBytes);
  const how = `${formatBytes(toCopyBytes)} to copy + ${formatBytes(extract.bytes)} to extract (${extract.basis}) + a reserve of ${formatBytes(reserveBytes)}`;
  return { needBytes, reserveBytes, how };
}

/** "base.tar.gz has 12 bytes, the manifest says 13" for the files whose size on the backup server is wrong. */
export function sizeProblems(listed: readonly PgBackupFile[], sizes: Map<string, number>): string[] {
  const out: string[] = [];
  for (const f of listed) {
    const s = sizes.get(f.name);
    if (s === undefined) out.push(`${f.name} is missing`);
    else if (s !== f.bytes) out.push(`${f.name} has ${s} bytes, the manifest says ${f.bytes}`);
  }
  return out;
}
