/**
 * Free space on a host (df on the nearest existing parent of a path) and the reserve a copy must
 * leave: a copy that would fill the disk is refused before it starts.
 */
import { ApplicationFailure } from '@temporalio/common';
import { formatBytes } from '../../contract/format';
import { Errors } from '../../contract/errors';
import { shellScript } from './argv';
import { OpenSession, execArgv, FILE_COMMAND_TIMEOUT_SECONDS, brief } from './exec';

/** Room kept free beyond what a step needs, for the server that runs there (its WAL, its logs): 5%, at least 64 MiB. */
export const FREE_SPACE_RESERVE_MIN_BYTES = 64 * 1024 * 1024;

export function freeSpaceReserve(needBytes: number): number {
  return Math.max(FREE_SPACE_RESERVE_MIN_BYTES, Math.ceil(needBytes * 0.05));
}

/**
 * The "Available" figure (1024-byte blocks) of a `df -Pk` data row: the field before the
 * capacity ("57%"), so a filesystem name or mount point with spaces is read right. null if absent.
 */
export function parseDfAvailableKiB(row: string): number | null {
  const cols = row.trim().split(/\s+/);
  const cap = cols.findIndex((c, i) => i >= 4 && /^(\d+|-)%$/.test(c));
  if (cap < 0) return null;
  const avail = Number(cols[cap - 1]);
  return Number.isSafeInteger(avail) && avail >= 0 ? avail : null;
}

/**
 * Free bytes for an unprivileged writer on the filesystem that holds `path` (it or its nearest
 * existing parent), read with POSIX `df -Pk`; null with the reason when it cannot be read.
 */
export async function freeBytesOnHost(open: OpenSession, path: string): Promise<{ bytes: number; dir: string } | { bytes: null; why: string }> {
  const r = await execArgv(
    open,
    shellScript('p="$1"; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done; echo "$p"; df -Pk -- "$p"', path),
    FILE_COMMAND_TIMEOUT_SECONDS,
  );
  if (r.exitCode !== 0) return { bytes: null, why: `df on ${open.name} ${brief(r)}` };
  const [dir, , row] = r.stdout.trim().split('\n');
  const avail = parseDfAvailableKiB(row ?? '');
  if (!dir || avail === null) return { bytes: null, why: `df on ${open.name} printed something unexpected: ${JSON.stringify(r.stdout.slice(0, 200))}` };
  return { bytes: avail * 1024, dir };
}

/**
 * Before a step writes `needBytes` where `path` is: room for it plus freeSpaceReserve, else
 * InsufficientSpace (non-retryable) with `refusal`'s words and nothing written. Returns the note
 * for the step log (what was free, or why it could not be read).
 */
export async function requireFreeSpace(
  open: OpenSession,
  path: string,
  needBytes: number,
  refusal: (f: { freeBytes: number; dir: string; reserveBytes: number }) => string,
): Promise<string> {
  const free = await freeBytesOnHost(open, path);
  if (free.bytes === null) return `free space not checked: ${free.why}`;
  const reserveBytes = freeSpaceReserve(needBytes);
  if (free.bytes < needBytes + reserveBytes)
    throw ApplicationFailure.nonRetryable(refusal({ freeBytes: free.bytes, dir: free.dir, reserveBytes }), Errors.InsufficientSpace);
  return `${formatBytes(free.bytes)} free on ${free.dir}, ${formatBytes(needBytes)} needed`;
}
