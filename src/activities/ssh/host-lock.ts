/**
 * An exclusive flock on a host that lives as long as one SSH channel: a killed worker's
 * connection closes and the lock goes with it.
 */
import { PassThrough } from 'node:stream';
import { cancellationSignal, heartbeat } from '../activity-context';
import { configError } from '../resolver';
import { commandLine } from './quote';
import { shellScript } from './argv';
import { OpenSession } from './exec';

/**
 * Hold a flock(2) on $1 (a file or directory that exists; $3: -x exclusive, -s shared) for as long as this
 * command's standard input stays open: the lock lives and dies with the SSH channel, so a worker
 * that is killed (its connection closed) leaves no lock behind. Prints "waiting" when another
 * holder has it, "locked" once held; exits 75 when it was not free within $2 seconds. A host
 * without flock(1) prints "noflock" and holds nothing.
 */
const HOLD_LOCK_SH = [
  'exec 9<"$1" || exit 1',
  'if ! command -v flock >/dev/null 2>&1; then echo noflock; exec cat >/dev/null; fi',
  'if flock -n "$3" 9; then echo locked; else echo waiting; flock "$3" -w "$2" 9 || exit 75; echo locked; fi',
  'exec cat >/dev/null',
].join('\n');

/** How long a held lock's channel may stay open: as long as the longest activity. */
const LOCK_CHANNEL_MS = 13 * 3600_000;

/** The lock was held by another run for as long as the caller would wait. */
export class LockBusyError extends Error {}

export interface HostLock {
  /** false: the host has no flock(1), nothing is held (the caller says so). */
  held: boolean;
  /** Seconds it waited for another holder (0 when it was free). */
  waitedSeconds: number;
  /** Let go (closes the holder's standard input); never throws. */
  release(): Promise<void>;
}

/**
 * Take a lock on a path of the host (exclusive, or `shared`), waiting (with heartbeats) up to
 * `waitSeconds` while another holder has it (0: not at all, LockBusyError). Two runs that would
 * otherwise share something on the host (a drill's scratch copy of one backup) take turns instead
 * of stepping on each other; readers of a backup hold its manifest shared so that retention,
 * which asks for it exclusively without waiting, leaves the backup alone while they read it.
 */
export async function holdHostLock(open: OpenSession, path: string, waitSeconds: number, what: string, opts: { shared?: boolean } = {}): Promise<HostLock> {
  if (!open.session.execStream) throw configError(`the SSH session to ${open.name} cannot hold a lock (no execStream): ${what} needs it`);
  const cancelled = cancellationSignal();
  const abort = new AbortController();
  const onCancel = () => abort.abort();
  cancelled?.addEventListener('abort', onCancel, { once: true });
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let seen = '';
  let waitingSince: number | null = null;
  const locked = new Promise<void>((resolve) => {
    stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      if (waitingSince === null && /^waiting$/m.test(seen)) waitingSince = Date.now();
      if (/^(locked|noflock)$/m.test(seen)) resolve();
    });
  });
  const started = Date.now();
  const channel = open.session.execStream(commandLine(shellScript(HOLD_LOCK_SH, path, String(waitSeconds), opts.shared ? '-s' : '-x')), {
    timeoutMs: LOCK_CHANNEL_MS,
    signal: abort.signal,
    stdin,
    stdout,
  });
  const beat = setInterval(
    () => heartbeat({ host: open.name, step: waitingSince === null ? `locking for ${what}` : `waiting for the lock on ${path} (${what})` }),
    2_000,
  );
  const stop = async () => {
    stdin.end();
    const closed = await Promise.race([
      channel.then(
        () => true,
        () => true,
      ),
      new Promise<false>((r) => setTimeout(() => r(false), 10_000).unref()),
    ]);
    if (!closed) abort.abort();
    cancelled?.removeEventListener('abort', onCancel);
  };
  try {
    const ended = await Promise.race([locked.then(() => null), channel]);
    if (ended !== null) {
      if (cancelled?.aborted) throw cancelled.reason;
      const out = (ended.stderr.trim() || seen.trim()).split('\n').slice(-3).join(' | ');
      if (ended.code === 75) throw new LockBusyError(`${what}: the lock on ${path} on ${open.name} was held by another run for ${waitSeconds} s`);
      throw new Error(
        `${what}: taking the lock on ${path} on ${open.name} failed ` +
          `(${ended.timedOut ? 'timed out' : `exited ${ended.code ?? `by signal ${ended.signal ?? '?'}`}`})${out ? `: ${out}` : ''}`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearInterval(beat);
  }
  const waitedSeconds = waitingSince === null ? 0 : Math.round((Date.now() - started) / 100) / 10;
  return { held: !/^noflock$/m.test(seen), waitedSeconds, release: stop };
}
