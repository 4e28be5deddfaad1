/**
 * Checking a backup's files against its manifest where they lie (the backup server, or a database
 * host a restore staged them on): sizes from `stat`, SHA-256 from `sha256sum`, both run there, so
 * the files are read as a stream on that host and never pass through the worker's memory.
 */
import { posix } from 'node:path';
import type { PgBackupFile, PgBackupVerifyResult } from '../../contract/backup';
import { BACKUP_ID_RE } from '../../contract/backup';
import { configError } from '../resolver';
import { brief, execArgv, type OpenSession } from '../ssh/exec';

/** Files of a backup directory that are not part of what the manifest lists. */
export const MANIFEST_FILE = 'switchyard-manifest.json';
export const DRILL_FILE = 'drill.json';
/** The record of the backup's offsite copy (PgStoreRecord), written once its upload completed. */
export const STORE_FILE = 'switchyard-store.json';
const NOT_LISTED = new Set([MANIFEST_FILE, DRILL_FILE, STORE_FILE]);

export function checkBackupId(backupId: unknown): string {
  if (typeof backupId !== 'string' || !BACKUP_ID_RE.test(backupId)) {
    throw configError(`a backup id is 1 to 128 letters, digits, ".", "_" or "-" starting with a letter or digit; got ${JSON.stringify(backupId)}`);
  }
  return backupId;
}

/** <root>/<cluster>/<backupId> */
export function backupDir(root: string, cluster: string, backupId: string): string {
  return posix.join(root, cluster, checkBackupId(backupId));
}

/** Parse `find <dir> -maxdepth 1 -type f -printf '%f\t%s\n'` output. */
export function parseSizes(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const tab = line.lastIndexOf('\t');
    if (tab <= 0) continue;
    out.set(line.slice(0, tab), Number(line.slice(tab + 1)));
  }
  return out;
}

/** Parse `sha256sum` output ("<hex>  <name>" per line). */
export function parseSha256sum(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) out.set(posix.basename(m[2]), m[1]);
  }
  return out;
}

/** Compare what is on disk with the manifest's list: pure, for unit tests. */
export function compareWithManifest(
  backupId: string,
  listed: readonly PgBackupFile[],
  sizes: Map<string, number>,
  sums: Map<string, string>,
): PgBackupVerifyResult {
  const problems: PgBackupVerifyResult['problems'] = [];
  for (const f of listed) {
    const size = sizes.get(f.name);
    if (size === undefined) {
      problems.push({ file: f.name, problem: 'missing' });
      continue;
    }
    if (size !== f.bytes) {
      problems.push({ file: f.name, problem: 'size', expected: String(f.bytes), actual: String(size) });
      continue;
    }
    const sum = sums.get(f.name);
    if (sum !== f.sha256) problems.push({ file: f.name, problem: 'sha256', expected: f.sha256, actual: sum ?? 'unreadable' });
  }
  const names = new Set(listed.map((f) => f.name));
  for (const name of sizes.keys()) if (!names.has(name) && !NOT_LISTED.has(name)) problems.push({ file: name, problem: 'unlisted' });
  const ok = problems.length === 0 && listed.length > 0;
  const detail = ok
    ? `${listed.length} files match the manifest (sizes and SHA-256)`
    : listed.length === 0
      ? 'the manifest lists no files'
      : `backup ${backupId} does not match its manifest: ${problems
          .slice(0, 5)
          .map((p) =>
            p.problem === 'missing'
              ? `${p.file} is missing`
              : p.problem === 'unlisted'
                ? `${p.file} is not in the manifest`
                : p.problem === 'size'
                  ? `${p.file} has ${p.actual} bytes, the manifest says ${p.expected}`
                  : `${p.file} has SHA-256 ${p.actual?.slice(0, 16)}…, the manifest says ${p.expected?.slice(0, 16)}…`,
          )
          .join('; ')}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ''}`;
  return { backupId, ok, checked: listed.length, problems, detail };
}

/**
 * Check the files in `dir` on an open host against the manifest's list. Only the listed files are
 * hashed (an unlisted one is reported by name). Throws when the directory cannot be read at all.
 */
export async function verifyOnHost(
  open: OpenSession,
  dir: string,
  backupId: string,
  listed: readonly PgBackupFile[],
  timeoutSeconds: number,
): Promise<PgBackupVerifyResult> {
  const ls = await execArgv(open, ['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%f\\t%s\\n'], 60);
  if (ls.exitCode !== 0) throw new Error(`cannot list ${dir} on ${open.name}: ${brief(ls)}`);
  const sizes = parseSizes(ls.stdout);
  const present = listed.filter((f) => sizes.get(f.name) === f.bytes).map((f) => posix.join(dir, f.name));
  let sums = new Map<string, string>();
  if (present.length) {
    const r = await execArgv(open, ['sha256sum', '--', ...present], timeoutSeconds);
    // sha256sum exits 1 when a file cannot be read; the lines it printed still count.
    if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`sha256sum in ${dir} on ${open.name}: ${brief(r)}`);
    sums = parseSha256sum(r.stdout);
  }
  return compareWithManifest(backupId, listed, sizes, sums);
}
