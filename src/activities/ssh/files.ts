/**
 * Reading and writing whole files on a host over one SSH session, in base64 chunks that fit a
 * command line (the one place switchyard moves a file's content over SSH). Writes go to a temp
 * file renamed over the path (one rename(2): a reader sees the old file or the new one, never a
 * part) and are checked by SHA-256; reads check every chunk's length and say whether the file, or
 * the directory it would be in, is missing.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { cancellationSignal, heartbeat } from '../activity-context';
import { formatBytes } from '../../contract/format';
import type { SshExecResult } from './session';
import { commandLine } from './quote';
import type { RemoteCommandResult } from '../../contract/observations';
import { shellScript } from './argv';
import { FILE_COMMAND_TIMEOUT_SECONDS, type OpenSession, mustExec, throwIfCancelled } from './exec';

/** Raw bytes per read command: 36 KiB is 48 KiB of base64, well inside the output kept per command. */
export const READ_CHUNK = 36 * 1024;
/** Raw bytes per write command: 48 KiB is 64 KiB of base64, well inside one command line (128 KiB). */
const WRITE_CHUNK = 48 * 1024;

/** Prints "file <size> <octal mode>", "other" (not a regular file), "nodir" (no parent directory $2) or "missing". */
const STAT_SH =
  'if [ -f "$1" ]; then stat -L -c "file %s %a" -- "$1"; elif [ -e "$1" ]; then echo other; elif [ ! -d "$2" ]; then echo nodir; else echo missing; fi';
/** One chunk of a file, base64 on one line. */
const READ_SH = 'dd if="$1" bs="$2" skip="$3" count=1 status=none | base64 -w0';
/** Several small files: "<path>\t<base64>" per line. */
const READ_MANY_SH = 'for f in "$@"; do printf "%s\\t" "$f"; base64 -w0 -- "$f" || exit 1; echo; done';
/**
 * One chunk of a write ($1 path, $2 base64, $3 "first"/"append", $4 "last" or "", $5 octal mode,
 * $6 temp file or "" for <path>.switchyard-tmp, $7 "mkdir" to make the parent directory). The first
 * chunk creates the temp file 0600; the last sets the mode, renames it over the path and prints
 * the result's sha256.
 */
export const WRITE_SH = [
  'set -e',
  't="${6:-$1.switchyard-tmp}"',
  'if [ "$3" = first ]; then',
  '  if [ "$7" = mkdir ]; then mkdir -p -- "$(dirname -- "$1")"; fi',
  '  umask 077; printf %s "$2" | base64 -d > "$t"',
  'else printf %s "$2" | base64 -d >> "$t"; fi',
  'if [ "$4" = last ]; then chmod "$5" -- "$t"; mv -f -- "$t" "$1"; sha256sum -- "$1"; fi',
].join('\n');

export type RemoteFileStat = { kind: 'nodir' } | { kind: 'missing' } | { kind: 'other' } | { kind: 'file'; size: number; mode: string };

export async function statFile(open: OpenSession, path: string): Promise<RemoteFileStat> {
  const out = (await mustExec(open, shellScript(STAT_SH, path, posix.dirname(path)), `stat ${path}`)).stdout.trim();
  if (out === 'missing' || out === 'nodir' || out === 'other') return { kind: out };
  const m = /^file (\d+) ([0-7]{3,4})$/.exec(out);
  if (!m) throw new Error(`stat ${path} on ${open.name} printed ${JSON.stringify(out.slice(0, 200))}`);
  return { kind: 'file', size: Number(m[1]), mode: m[2] };
}

export type RemoteFile = Exclude<RemoteFileStat, { kind: 'file' }> | { kind: 'file'; content: Buffer; mode: string };

/** A file's content and mode, read chunk by chunk (a heartbeat after each); a chunk of the wrong length (the file changed) throws. */
export async function readFile(open: OpenSession, path: string): Promise<RemoteFile> {
  const st = await statFile(open, path);
  if (st.kind !== 'file') return st;
  const parts: Buffer[] = [];
  for (let i = 0; i * READ_CHUNK < st.size; i++) {
    const r = await mustExec(open, shellScript(READ_SH, path, String(READ_CHUNK), String(i)), `reading ${path}`);
    const chunk = Buffer.from(r.stdout.trim(), 'base64');
    const want = Math.min(READ_CHUNK, st.size - i * READ_CHUNK);
    if (chunk.length !== want)
      throw new Error(
        `reading ${path} on ${open.name}: got ${chunk.length} bytes at offset ${i * READ_CHUNK}, expected ${want} (did it change while being read?)`,
      );
    parts.push(chunk);
    heartbeat({ host: open.name, reading: path });
  }
  return { kind: 'file', content: Buffer.concat(parts), mode: st.mode };
}

/**
 * Several files whose sizes are known, as UTF-8 text: small ones in as few commands as fit in a result, large ones
 * chunk by chunk. Missing ones are left out.
 */
export async function readTextFiles(open: OpenSession, files: { path: string; bytes: number }[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let batch: string[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const r = await mustExec(open, shellScript(READ_MANY_SH, ...batch), `reading ${batch.length} files`);
    for (const line of r.stdout.split('\n')) {
      const tab = line.lastIndexOf('\t');
      if (tab > 0) out.set(line.slice(0, tab), Buffer.from(line.slice(tab + 1), 'base64').toString('utf8'));
    }
    batch = [];
    batchBytes = 0;
  };
  for (const f of files) {
    if (f.bytes > READ_CHUNK) {
      const t = await readFile(open, f.path);
      if (t.kind === 'file') out.set(f.path, t.content.toString('utf8'));
      continue;
    }
    if (batchBytes + f.bytes > READ_CHUNK) await flush();
    batch.push(f.path);
    batchBytes += f.bytes + f.path.length;
  }
  await flush();
  return out;
}

export interface WriteOptions {
  /** Octal mode of the file written (default 600). */
  mode?: string;
  /** The temp file (same file system), when <path>.switchyard-tmp would land in a directory whose files are checked. */
  tmp?: string;
  /** Make the parent directory when it is missing (default: a missing parent is an error). */
  makeParent?: boolean;
}

/** Write a file atomically (temp file + rename); checks the SHA-256 written. */
export async function writeFileAtomic(open: OpenSession, path: string, content: Buffer, opts: WriteOptions = {}): Promise<void> {
  const n = Math.max(1, Math.ceil(content.length / WRITE_CHUNK));
  let last: RemoteCommandResult | undefined;
  for (let i = 0; i < n; i++) {
    const b64 = content.subarray(i * WRITE_CHUNK, (i + 1) * WRITE_CHUNK).toString('base64');
    const argv = shellScript(
      WRITE_SH,
      path,
      b64,
      i === 0 ? 'first' : 'append',
      i === n - 1 ? 'last' : '',
      opts.mode ?? '600',
      opts.tmp ?? '',
      opts.makeParent ? 'mkdir' : '',
    );
    last = await mustExec(open, argv, `writing ${path}`);
    heartbeat({ host: open.name, writing: path });
  }
  // sha256sum prefixes the line with a backslash when it had to escape the file name.
  const written = last?.stdout.trim().split(/\s+/)[0]?.replace(/^\\/, '');
  const want = createHash('sha256').update(content).digest('hex');
  if (written !== want) throw new Error(`writing ${path} on ${open.name}: the file written has SHA-256 ${written ?? '?'}, not the content's ${want}`);
}

/** Print a file when it exists; exit 0 either way. */
const CAT_IF_SH = 'if [ -f "$1" ]; then cat -- "$1"; fi';

/** A whole text file in one command (not cut to the tail like execArgv's output); null when absent or empty, an error past `max` characters. */
export async function readWholeText(open: OpenSession, path: string, max: number): Promise<string | null> {
  const r: SshExecResult = await open.session.exec(commandLine(shellScript(`${CAT_IF_SH} && printf '\\nEOF-OK\\n'`, path)), {
    timeoutMs: FILE_COMMAND_TIMEOUT_SECONDS * 1000,
    signal: cancellationSignal(),
  });
  throwIfCancelled();
  if (r.code !== 0 || !r.stdout.endsWith('\nEOF-OK\n')) {
    throw new Error(
      `reading ${path} on ${open.name}: ${r.timedOut ? 'timed out' : `exited ${r.code ?? `by signal ${r.signal ?? '?'}`}`}` +
        `${r.stderr.trim() ? `: ${r.stderr.trim().slice(-300)}` : ''}`,
    );
  }
  const text = r.stdout.slice(0, -'\nEOF-OK\n'.length);
  if (text.length > max) throw new Error(`${path} on ${open.name} is larger than ${formatBytes(max)}`);
  return text === '' ? null : text;
}
