/**
 * The sandbox's own bookkeeping: <dir>/state.json (what `up` started) and a lock so two
 * commands never start or stop the same sandbox at once.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { isAlive, sleep } from './procs';

export interface ProcRecord {
  pid: number;
  /** /proc/<pid>/stat start time: tells our process from a later one that reused the pid. */
  startTime: string;
}

export interface SandboxState {
  version: 1;
  dir: string;
  net: number;
  cluster: string;
  runAs: { user: string; uid: number; gid: number };
  createdAt: string;
  /** Set once the initial layout is in place (services of the preferred site started …). */
  initialized: boolean;
  /** Processes started directly by the sandbox (temporal, ec2, front, sshd, app), by part name. */
  procs: Record<string, ProcRecord>;
}

export function readState(file: string): SandboxState | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`sandbox: ${file} is not valid JSON (${(err as Error).message}); remove the sandbox directory and run up again`);
  }
  const s = data as Partial<SandboxState>;
  if (s.version !== 1 || typeof s.dir !== 'string' || typeof s.net !== 'number' || typeof s.cluster !== 'string')
    throw new Error(`sandbox: ${file} is not a sandbox state file this version understands`);
  return { initialized: false, procs: {}, ...s } as SandboxState;
}

export function writeState(file: string, state: SandboxState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// Lock: in-process chain plus a pid file beside the sandbox dir (the dir itself goes away on down)

const chains = new Map<string, Promise<unknown>>();

export async function withLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const prev = chains.get(lockFile) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chained = prev.then(() => mine);
  chains.set(lockFile, chained);
  await prev.catch(() => undefined);
  let held = false;
  try {
    held = await acquireFileLock(lockFile);
    return await fn();
  } finally {
    if (held) rmSync(lockFile, { force: true });
    release();
    if (chains.get(lockFile) === chained) chains.delete(lockFile);
  }
}

async function acquireFileLock(lockFile: string, timeoutMs = 180_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(dirname(lockFile), { recursive: true });
      const fd = openSync(lockFile, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') return false; // cannot lock there: in-process lock only
      if (code !== 'EEXIST') throw err;
    }
    let holder = NaN;
    let young = false;
    try {
      const text = readFileSync(lockFile, 'utf8').trim();
      holder = Number(text);
      // Its maker creates it empty and writes its pid next: an empty file that new is being
      // written, not stale (taking it as stale would let two processes hold the lock at once).
      young = text === '' && Date.now() - statSync(lockFile).mtimeMs < 5_000;
    } catch {
      /* removed meanwhile */
    }
    if (!young && !isAlive(holder)) {
      rmSync(lockFile, { force: true }); // stale: its process is gone
      continue;
    }
    if (Date.now() > deadline) throw new Error(`sandbox: ${lockFile} is held by pid ${holder} (another sandbox command is running)`);
    await sleep(200);
  }
}

export function stateExists(file: string): boolean {
  return existsSync(file);
}
