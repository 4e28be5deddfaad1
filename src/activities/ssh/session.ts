/**
 * The default SSH session: node-ssh (ssh2) with the host key checked by the caller's verifier and
 * only the pinned key's algorithm offered, so the server presents the key that was pinned.
 */
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';

export interface SshConnectConfig {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  passphrase?: string;
  /** Milliseconds to wait for the handshake (ssh.connectTimeoutSeconds). */
  readyTimeout: number;
  /** Host key algorithms to negotiate: those of the pinned key, so the server presents that key. */
  hostKeyAlgorithms: string[];
  /** Called with the raw public key blob the server presented; false refuses the connection. */
  hostVerifier: (key: Buffer) => boolean;
}

export interface SshExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** How a streamed command is fed and where its output goes (SshSessionLike.execStream). */
export interface SshStreamOptions {
  timeoutMs: number;
  /** Aborting stops the command (KILL, channel closed) like a timeout, without timedOut. */
  signal?: AbortSignal;
  /**
   * Piped into the command's standard input with backpressure; the command sees EOF when this
   * stream ends. Without it, standard input is closed at once.
   */
  stdin?: NodeJS.ReadableStream;
  /**
   * The command's standard output is piped here with backpressure (and this stream is ended when
   * the output ends) instead of being collected: the result's stdout is then ''.
   */
  stdout?: NodeJS.WritableStream;
  /** Called on every chunk of output (either stream), e.g. to heartbeat. */
  onData?: () => void;
  /** A channel not open within this many milliseconds is given up as ChannelNotOpened. */
  openMs?: number;
}

export interface SshSessionLike {
  /** Run one command line (already quoted); resolves when it exits or `timeoutMs` passes. */
  exec(command: string, opts: { timeoutMs: number; signal?: AbortSignal; onData?: () => void; openMs?: number }): Promise<SshExecResult>;
  /**
   * Run one command line (already quoted) with its standard input and/or output as streams, so
   * files of any size pass through without being held in memory. Standard error is collected
   * (its tail). Optional: sessions without it cannot stream (fakes in unit tests).
   */
  execStream?(command: string, opts: SshStreamOptions): Promise<SshExecResult>;
  close(): void | Promise<void>;
}

/**
 * The command's channel never opened (the connection died, the server refused the channel, or it
 * did not open within openMs): the command did not start, so it may be run on another connection.
 */
export class ChannelNotOpened extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelNotOpened';
  }
}

/** Standard error kept by execStream: its tail, when longer. */
const STREAM_STDERR_MAX = 64 * 1024;
/** After a stop (timeout, abort) how long a command may take to end before we return without it. */
const STOP_GRACE_MS = 1_000;

export async function nodeSshConnect(cfg: SshConnectConfig): Promise<SshSessionLike & { alive(): boolean }> {
  const ssh = new NodeSSH();
  // Errors after the handshake (a reset mid-command) must not become an unhandled 'error' event
  // that takes the worker down; the command in flight sees its channel close instead.
  let lateError: Error | undefined;
  try {
    await ssh.connect({
      host: cfg.host,
      port: cfg.port,
      username: cfg.username,
      privateKey: cfg.privateKey,
      passphrase: cfg.passphrase,
      readyTimeout: cfg.readyTimeout,
      hostVerifier: (key: Buffer) => cfg.hostVerifier(key),
      algorithms: { serverHostKey: cfg.hostKeyAlgorithms as never },
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      tryKeyboard: false,
    });
  } catch (err) {
    ssh.dispose();
    throw err;
  }
  let alive = true;
  ssh.connection?.on('error', (err: Error) => {
    lateError = err;
    alive = false;
  });
  ssh.connection?.on('close', () => (alive = false));
  ssh.connection?.on('end', () => (alive = false));

  return {
    alive: () => alive && ssh.isConnected(),
    async exec(command, { timeoutMs, signal, onData, openMs }): Promise<SshExecResult> {
      let channel: ClientChannel | undefined;
      let timedOut = false;
      const out: string[] = [];
      const err: string[] = [];
      const stop = () => {
        try {
          // Delivered by sshd as killpg() on the command's process group where it supports it.
          channel?.signal('KILL');
        } catch {
          /* the server may not support signals */
        }
        channel?.close();
      };
      // sshd keeps the channel open until the command exits, so a command that ignores the
      // signal would hold us forever: after a short grace the result is returned without it and
      // the caller's close() drops the connection.
      let giveUp: (() => void) | undefined;
      const gaveUp = new Promise<'gave-up'>((resolve) => (giveUp = () => resolve('gave-up')));
      let grace: NodeJS.Timeout | undefined;
      const expire = () => {
        timedOut = true;
        stop();
        grace = setTimeout(() => giveUp?.(), 1_000);
      };
      const timer = setTimeout(expire, timeoutMs);
      // A channel that does not open in time: given up before the command started.
      let notOpened: (() => void) | undefined;
      const neverOpened = new Promise<'not-opened'>((resolve) => (notOpened = () => resolve('not-opened')));
      const openTimer = openMs === undefined ? undefined : setTimeout(() => channel === undefined && notOpened?.(), openMs);
      let abandoned = false;
      const onAbort = () => {
        stop();
        grace = setTimeout(() => giveUp?.(), 1_000);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const running = ssh.execCommand(command, {
        noTrim: true,
        onChannel: (ch) => {
          channel = ch;
          clearTimeout(openTimer);
          if (timedOut || signal?.aborted || abandoned) stop();
        },
        onStdout: (chunk) => {
          out.push(chunk.toString('utf8'));
          onData?.();
        },
        onStderr: (chunk) => {
          err.push(chunk.toString('utf8'));
          onData?.();
        },
      });
      running.catch(() => undefined);
      try {
        let r: Awaited<typeof running> | 'gave-up' | 'not-opened';
        try {
          r = await Promise.race([running, gaveUp, neverOpened]);
        } catch (err) {
          if (channel === undefined) throw new ChannelNotOpened(`ssh: no channel for the command: ${(err as Error).message}`);
          throw err;
        }
        if (r === 'not-opened') {
          abandoned = true;
          throw new ChannelNotOpened(`ssh: no channel opened within ${openMs} ms`);
        }
        if (r === 'gave-up') return { code: null, signal: null, stdout: out.join(''), stderr: err.join(''), timedOut };
        const stderr = lateError && r.code === null && !timedOut ? `${r.stderr}${r.stderr ? '\n' : ''}connection lost: ${lateError.message}` : r.stderr;
        return { code: timedOut ? null : r.code, signal: r.signal, stdout: r.stdout, stderr, timedOut };
      } finally {
        clearTimeout(timer);
        clearTimeout(grace);
        clearTimeout(openTimer);
        signal?.removeEventListener('abort', onAbort);
      }
    },
    execStream(command: string, opts: SshStreamOptions): Promise<SshExecResult> {
      return execStream(ssh, command, opts, () => lateError);
    },
    close() {
      ssh.dispose();
    },
  };
}

/**
 * One command on its own channel of the ssh2 connection, with stdin and/or stdout piped (Node
 * stream backpressure becomes SSH window flow control: a slow reader holds the remote writer).
 * Resolves when the channel closes, or STOP_GRACE_MS after a timeout or an abort stopped it.
 */
function execStream(ssh: NodeSSH, command: string, opts: SshStreamOptions, lateError: () => Error | undefined): Promise<SshExecResult> {
  const { timeoutMs, signal, stdin, stdout, onData, openMs } = opts;
  const conn = ssh.connection;
  if (!conn) return Promise.reject(new ChannelNotOpened('ssh: not connected'));
  if (signal?.aborted) return Promise.resolve({ code: null, signal: null, stdout: '', stderr: 'not started: aborted', timedOut: false });
  return new Promise<SshExecResult>((resolve, reject) => {
    let channel: ClientChannel | undefined;
    let timedOut = false;
    let stopped = false;
    let settled = false;
    let code: number | null = null;
    let sig: string | null = null;
    const out: Buffer[] = [];
    let err = '';
    let grace: NodeJS.Timeout | undefined;

    const cleanup = () => {
      clearTimeout(timer);
      clearTimeout(grace);
      clearTimeout(openTimer);
      signal?.removeEventListener('abort', onAbort);
      stdout?.removeListener('error', onSinkError);
      stdin?.removeListener('error', onSourceError);
      if (channel) {
        if (stdin) stdin.unpipe(channel);
        channel.unpipe();
      }
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      cleanup();
      let stderr = err;
      const late = lateError();
      if (late && code === null && !timedOut) stderr = `${stderr}${stderr ? '\n' : ''}connection lost: ${late.message}`;
      resolve({ code: timedOut ? null : code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr, timedOut });
    };
    const stop = () => {
      if (stopped) return;
      stopped = true;
      if (channel) {
        // Nothing more goes in; what is still buffered on the way out is drained and dropped so
        // the channel can close (ssh2 emits 'close' only after the readable side ended).
        if (stdin) stdin.unpipe(channel);
        channel.unpipe();
        channel.on('data', () => undefined);
        channel.resume();
        try {
          // Delivered by sshd as killpg() on the command's process group where it supports it.
          channel.signal('KILL');
        } catch {
          /* the server may not support signals */
        }
        channel.close();
      }
      // A command that ignores the signal would hold the channel open: give up after a grace.
      grace = setTimeout(finish, STOP_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    function onAbort() {
      stop();
    }
    function onSinkError(e: Error) {
      err += `${err ? '\n' : ''}output stream failed: ${e.message}`;
      stop();
    }
    function onSourceError(e: Error) {
      err += `${err ? '\n' : ''}input stream failed: ${e.message}`;
      stop();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    // A channel that does not open in time: given up before the command started (and killed if
    // it opens later: `settled` below).
    const openTimer =
      openMs === undefined
        ? undefined
        : setTimeout(() => {
            if (channel !== undefined || settled) return;
            settled = true;
            cleanup();
            reject(new ChannelNotOpened(`ssh: no channel opened within ${openMs} ms`));
          }, openMs);

    try {
      conn.exec(command, (e, ch) => {
        if (e) {
          if (settled) return;
          settled = true;
          cleanup();
          reject(new ChannelNotOpened(`ssh: no channel for the command: ${e.message}`));
          return;
        }
        if (settled) {
          // Given up on (stopped before the channel opened, and the grace passed): nothing may run.
          try {
            ch.signal('KILL');
          } catch {
            /* the server may not support signals */
          }
          ch.close();
          return;
        }
        channel = ch;
        clearTimeout(openTimer);
        ch.on('exit', (c: number | null, s?: string) => {
          code = c ?? null;
          sig = s ?? null;
        });
        ch.on('close', finish);
        ch.stderr.on('data', (chunk: Buffer) => {
          err += chunk.toString('utf8');
          if (err.length > STREAM_STDERR_MAX * 2) err = err.slice(-STREAM_STDERR_MAX);
          onData?.();
        });
        if (stdout) {
          stdout.on('error', onSinkError);
          ch.pipe(stdout, { end: true });
          if (onData) ch.on('data', () => onData());
        } else {
          ch.on('data', (chunk: Buffer) => {
            out.push(chunk);
            onData?.();
          });
        }
        if (stdin) {
          stdin.on('error', onSourceError);
          stdin.pipe(ch, { end: true });
        } else ch.end();
        if (stopped) {
          stopped = false;
          stop();
        }
      });
    } catch (e) {
      settled = true;
      cleanup();
      reject(new ChannelNotOpened(`ssh: no channel for the command: ${(e as Error).message}`));
    }
  }).then((r) => (r.stderr.length > STREAM_STDERR_MAX ? { ...r, stderr: `[…]${r.stderr.slice(-STREAM_STDERR_MAX)}` } : r));
}
