/**
 * Running one argument vector on a host over SSH: connecting with the pinned host key (a failure is
 * an SshConnectError whose outcome says refused, timed out, auth or host key), output capped, a
 * heartbeat while it runs, the session always closed.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { utils as ssh2utils } from 'ssh2';
import type { HostConfig } from '../../topology/schema';
import { cancellationSignal, errorMessage, heartbeat } from '../activity-context';
import { configError } from '../resolver';
import { describeRef, type SecretScope } from '../secrets';
import type { Call, Runtime } from '../runtime';
import type { SshExecResult, SshSessionLike } from './session';
import { commandLine } from './quote';
import type { RemoteCommandResult, SshCheck } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { PinnedKey, fingerprint, parsePinnedKey, hostKeyAlgorithms } from './host-key';

/** Output kept per stream in a result (it lands in workflow history): the tail, if longer. */
export const MAX_OUTPUT_CHARS = 64 * 1024;
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 300;

// ---------------------------------------------------------------------------------------------
// Connections

export type SshOutcome = SshCheck['outcome'];

/** Why a connection could not be made, classified. */
export class SshConnectError extends Error {
  constructor(
    message: string,
    readonly outcome: Exclude<SshOutcome, 'ok'>,
  ) {
    super(message);
    this.name = 'SshConnectError';
  }

  /** As thrown from an action: mismatch and auth failures are not fixed by retrying. */
  toActionError(): Error {
    if (this.outcome === 'host-key-mismatch') return ApplicationFailure.nonRetryable(this.message, Errors.HostKeyMismatch);
    if (this.outcome === 'auth-failed') return ApplicationFailure.nonRetryable(this.message, Errors.SshAuthFailed);
    return new Error(this.message);
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EADDRNOTAVAIL']);

function classify(err: unknown): Exclude<SshOutcome, 'ok' | 'host-key-mismatch'> {
  const e = err as { level?: string; code?: string; message?: string };
  if (e?.level === 'client-authentication') return 'auth-failed';
  if (e?.level === 'client-timeout' || e?.level === 'client-socket') return 'unreachable';
  if (e?.code && NETWORK_CODES.has(e.code)) return 'unreachable';
  if (/timed out|no response from server|connection lost|socket hang up/i.test(e?.message ?? '')) return 'unreachable';
  return 'error';
}

export interface OpenSession {
  session: SshSessionLike;
  host: HostConfig;
  name: string;
  key: PinnedKey;
}

function where(name: string, host: HostConfig): string {
  return `${name} (${host.address}:${host.port})`;
}

/**
 * Connect to a host of the cluster with its pinned key; throws SshConnectError. On a worker with
 * an SSH pool (runtime.sshPool) the session shares a live connection opened with the same pin and
 * key (pool.ts says why that checks no less); `fresh` opens a connection of its own (the login
 * check).
 */
export async function connectHost(rt: Runtime, call: Call, cluster: string, hostName: string, opts: { fresh?: boolean } = {}): Promise<OpenSession> {
  const c = call.top.cluster(cluster);
  const host = call.top.host(cluster, hostName);
  const pinned = parsePinnedKey(host.hostKey);
  const privateKey = await call.secrets.get(c.ssh.privateKey, `ssh.privateKey of cluster "${cluster}"`);
  const passphrase = c.ssh.passphrase ? await call.secrets.get(c.ssh.passphrase, `ssh.passphrase of cluster "${cluster}"`) : undefined;
  const parsed = ssh2utils.parseKey(privateKey, passphrase);
  if (parsed instanceof Error) {
    throw configError(`the SSH private key from ${describeRef(c.ssh.privateKey)} (ssh.privateKey of cluster "${cluster}") cannot be used: ${parsed.message}`);
  }
  const username = host.user ?? c.ssh.user;
  const connect = async (): Promise<SshSessionLike> => {
    let presented: string | undefined;
    try {
      return await rt.ssh({
        host: host.address,
        port: host.port,
        username,
        privateKey,
        passphrase,
        readyTimeout: c.ssh.connectTimeoutSeconds * 1000,
        hostKeyAlgorithms: hostKeyAlgorithms(pinned.type),
        hostVerifier: (key: Buffer) => {
          const ok = Buffer.isBuffer(key) && key.equals(pinned.blob);
          presented = Buffer.isBuffer(key) ? fingerprint(key) : String(key);
          return ok;
        },
      });
    } catch (err) {
      if (presented !== undefined && presented !== pinned.fingerprint) {
        throw new SshConnectError(`host key mismatch for ${where(hostName, host)}: presented ${presented} pinned ${pinned.fingerprint}`, 'host-key-mismatch');
      }
      if (presented === undefined && /host key|hostkey|verification failed|no matching host key/i.test(errorMessage(err))) {
        // The server had no key of the pinned type: it can only present a different key.
        throw new SshConnectError(
          `host key mismatch for ${where(hostName, host)}: presented no ${pinned.type} key pinned ${pinned.fingerprint} (${errorMessage(err)})`,
          'host-key-mismatch',
        );
      }
      const outcome = classify(err);
      const what = outcome === 'auth-failed' ? `authentication as ${username} refused by` : 'cannot connect to';
      throw new SshConnectError(`ssh: ${what} ${where(hostName, host)}: ${errorMessage(err)}`, outcome);
    }
  };
  const pool = opts.fresh ? null : rt.sshPool;
  // The pool's key: everything the connection was opened and checked with (the client key by digest).
  const key = [
    host.address,
    host.port,
    username,
    pinned.fingerprint,
    createHash('sha256')
      .update(`${privateKey}\0${passphrase ?? ''}`)
      .digest('hex'),
  ].join('|');
  const session = pool ? await pool.lease(key, connect) : await connect();
  return { session, host, name: hostName, key: pinned };
}

function tail(s: string): string {
  return s.length > MAX_OUTPUT_CHARS ? `[…${s.length - MAX_OUTPUT_CHARS} characters cut]${s.slice(-MAX_OUTPUT_CHARS)}` : s;
}

/**
 * Run one argv on an open session; heartbeats while it runs. Non-zero exit is data. `shown`: the
 * call's secrets, for a command whose output is shown rather than parsed (a hook, a command
 * driver, runRemote): every value resolved in the call is taken out of its command line and output
 * before the output is cut to its tail, so neither that cut nor a summary made of it later (brief,
 * a slice, JSON.stringify, lines joined) can leave part of a secret behind where the scrub of the
 * activity's result (Runtime.activity) would no longer recognise it.
 */
export async function execArgv(open: OpenSession, argv: readonly string[], timeoutSeconds: number, shown?: SecretScope): Promise<RemoteCommandResult> {
  const command = commandLine(argv);
  const beat = setInterval(() => heartbeat({ host: open.name }), 2_000);
  const cancelled = cancellationSignal();
  let r: SshExecResult;
  try {
    r = await open.session.exec(command, { timeoutMs: timeoutSeconds * 1000, signal: cancelled, onData: () => heartbeat({ host: open.name }) });
  } finally {
    clearInterval(beat);
  }
  // The command was stopped because the activity was cancelled: report the cancellation itself.
  if (cancelled?.aborted) throw cancelled.reason;
  const text = (s: string) => (shown ? shown.redact(s) : s);
  return {
    host: open.name,
    command: text(command),
    exitCode: r.code,
    signal: r.signal,
    timedOut: r.timedOut,
    stdout: tail(text(r.stdout)),
    stderr: tail(text(r.timedOut ? `${r.stderr}${r.stderr ? '\n' : ''}timed out after ${timeoutSeconds}s` : r.stderr)),
  };
}

/** Open, use, always close. Connection failures surface as SshConnectError. */
export async function withHost<T>(
  rt: Runtime,
  call: Call,
  cluster: string,
  hostName: string,
  fn: (open: OpenSession) => Promise<T>,
  opts: { fresh?: boolean } = {},
): Promise<T> {
  const open = await connectHost(rt, call, cluster, hostName, opts);
  try {
    return await fn(open);
  } finally {
    try {
      await open.session.close();
    } catch {
      /* closing is best effort */
    }
  }
}

/** runRemote's core, for use by other activities: connection problems thrown as action errors, the output shown (execArgv). */
export function runOnHost(
  rt: Runtime,
  call: Call,
  cluster: string,
  hostName: string,
  argv: readonly string[],
  timeoutSeconds: number,
): Promise<RemoteCommandResult> {
  return onHost(rt, call, cluster, hostName, (open) => execArgv(open, argv, timeoutSeconds, call.secrets));
}

/** How long a small file operation over SSH (stat, mkdir, mv, a short read) may take. */
export const FILE_COMMAND_TIMEOUT_SECONDS = 60;

/** Run one argv that must succeed; a non-zero exit throws with the outcome and output only (a write's command line carries file content). */
export async function mustExec(
  open: OpenSession,
  argv: readonly string[],
  what: string,
  timeoutSeconds = FILE_COMMAND_TIMEOUT_SECONDS,
): Promise<RemoteCommandResult> {
  const r = await execArgv(open, argv, timeoutSeconds);
  if (r.exitCode !== 0) throw new Error(`${what} on ${open.name} ${brief(r)}`);
  return r;
}

/** withHost for an activity: a connection problem surfaces as the action error it stands for. */
export async function onHost<T>(rt: Runtime, call: Call, cluster: string, hostName: string, fn: (open: OpenSession) => Promise<T>): Promise<T> {
  try {
    return await withHost(rt, call, cluster, hostName, fn);
  } catch (err) {
    throw err instanceof SshConnectError ? err.toActionError() : err;
  }
}

/** Between steps of a long activity: stop when the activity was cancelled. */
export function throwIfCancelled(): void {
  const s = cancellationSignal();
  if (s?.aborted) throw s.reason;
}

/** One line about how a command ended: "exited 1: <last lines of its output>". */
export function brief(r: RemoteCommandResult): string {
  const out = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' | ');
  const status = r.timedOut ? 'timed out' : r.exitCode === null ? `ended by signal ${r.signal ?? '?'}` : `exited ${r.exitCode}`;
  // A long line keeps its start and its end (where psql and pg_ctl put the reason).
  const shown = out.length > 500 ? `${out.slice(0, 200)} … ${out.slice(-290)}` : out;
  return out ? `${status}: ${shown}` : status;
}
