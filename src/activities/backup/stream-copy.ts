/**
 * Copying one file from one host to another through the worker: `cat` on the sending host piped
 * into `cat >` on the receiving one, streamed with backpressure and hashed on the way, never held
 * in memory. pgRestoreStage copies a backup this way when the backup server is not the node's host.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { cancellationSignal, errorMessage } from '../activity-context';
import { configError } from '../resolver';
import type { SshExecResult } from '../ssh/session';
import { throwIfCancelled, type OpenSession } from '../ssh/exec';
import { commandLine } from '../ssh/quote';
import { shellScript } from '../ssh/argv';

/** Buffering between the two SSH channels of a streamed copy. */
const STREAM_BUFFER_BYTES = 1024 * 1024;
/** The receiving end of a streamed copy. */
export const RECEIVE_SH = 'umask 077; exec cat > "$1"';

export interface StreamResult {
  bytes: number;
  sha256: string;
}

/** How a copy may differ from a plain `cat`: another reading command, and a transform in the worker between the two ends. */
export interface StreamOptions {
  /** The command whose standard output is sent (default `cat -- <fromPath>`; fromPath then only names it in messages). */
  readArgv?: readonly string[];
  /**
   * Applied in the worker to what is read (encryption, decryption, a check); the result is what is
   * hashed and written. Its error stops both ends and is what the copy throws.
   */
  through?: Transform;
}

/**
 * `cat <from>` on the backup server piped into `cat > <to>` on the node's host through the worker,
 * hashed on the way. Backpressure holds the reader when the writer is slow; whichever end fails
 * first stops the other. Throws (retryably) when either command fails.
 */
export async function streamFile(
  from: OpenSession,
  to: OpenSession,
  fromPath: string,
  toPath: string,
  timeoutSeconds: number,
  onProgress: (bytes: number) => void,
  opts: StreamOptions = {},
): Promise<StreamResult> {
  if (!from.session.execStream || !to.session.execStream) {
    throw configError(`the SSH sessions to ${from.name} and ${to.name} cannot stream files (no execStream): a restore from another host needs them`);
  }
  const stopBoth = new AbortController();
  const cancelled = cancellationSignal();
  const signal = cancelled ? AbortSignal.any([cancelled, stopBoth.signal]) : stopBoth.signal;
  const hash = createHash('sha256');
  let bytes = 0;
  const pass = new Transform({
    highWaterMark: STREAM_BUFFER_BYTES,
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const beat = setInterval(() => onProgress(bytes), 2_000);
  const timeoutMs = timeoutSeconds * 1000;
  // The end that failed first is the cause: the other was stopped because of it.
  let first: 'read' | 'write' | null = null;
  const failed = (side: 'read' | 'write') => {
    first ??= side;
    stopBoth.abort();
  };
  // With a transform: reader → through → pass → writer; a failure of the transform stops both ends.
  let throughError: Error | null = null;
  const through = opts.through;
  if (through) {
    through.on('error', (e: Error) => {
      throughError ??= e;
      failed('read');
    });
    through.pipe(pass);
  }
  const reading = from.session
    .execStream(commandLine(opts.readArgv ?? ['cat', '--', fromPath]), { timeoutMs, signal, stdout: through ?? pass })
    .then((r) => {
      // The reader ended without its whole output: the writer must not wait for more.
      if (r.code !== 0) failed('read');
      return r;
    })
    .catch((err: unknown) => {
      failed('read');
      throw err;
    });
  const writing = to.session
    .execStream(commandLine(shellScript(RECEIVE_SH, toPath)), { timeoutMs, signal, stdin: pass })
    .then((r) => {
      if (r.code !== 0) failed('write');
      return r;
    })
    .catch((err: unknown) => {
      failed('write');
      throw err;
    });
  let r: PromiseSettledResult<SshExecResult>;
  let w: PromiseSettledResult<SshExecResult>;
  try {
    [r, w] = await Promise.allSettled([reading, writing]);
  } finally {
    clearInterval(beat);
    pass.destroy();
    through?.destroy();
  }
  throwIfCancelled();
  if (throughError) throw throughError;
  const how = (x: SshExecResult) => {
    const end = x.timedOut
      ? `timed out after ${timeoutSeconds} s`
      : x.code === null
        ? `ended ${x.signal ? `by signal ${x.signal}` : 'without an exit status'}`
        : `exited ${x.code}`;
    const err = x.stderr.trim();
    return `${end}${err ? `: ${err.split('\n').slice(-3).join(' | ').slice(0, 500)}` : ''}`;
  };
  const readFail =
    r.status === 'rejected'
      ? `reading ${fromPath} on ${from.name} failed: ${errorMessage(r.reason)}`
      : r.value.code !== 0
        ? `reading ${fromPath} on ${from.name} (cat) ${how(r.value)}`
        : null;
  const writeFail =
    w.status === 'rejected'
      ? `writing ${toPath} on ${to.name} failed: ${errorMessage(w.reason)}`
      : w.value.code !== 0
        ? `writing ${toPath} on ${to.name} (cat >) ${how(w.value)}`
        : null;
  if (readFail || writeFail) {
    const [cause, then] = first === 'write' ? [writeFail, readFail] : [readFail ?? writeFail, readFail ? writeFail : null];
    throw new Error(then ? `${cause}; then ${then.replace(/^\w/, (ch) => ch.toLowerCase())}` : (cause as string));
  }
  return { bytes, sha256: hash.digest('hex') };
}
