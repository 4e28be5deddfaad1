/**
 * Shell steps over SSH with pinned host keys: connectivity checks, one-off commands, services and
 * maintenance mode. Commands are argument vectors quoted by shell.ts; connections always close.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { utils as ssh2utils } from 'ssh2';
import type { HostConfig, ServiceConfig, SiteConfig } from '../topology/schema';
import { cancellationSignal, configError, describeRef, errorMessage, heartbeat, pollUntil, requestSignal, type Resolver } from './common';
import type { Call, Runtime } from './runtime';
import type { SshExecResult, SshSessionLike } from './ssh/session';
import { commandLine } from './ssh/quote';
import { formatBytes } from '../contract/format';
import { hookCheckTimeoutSeconds } from '../topology/layout';
import type { HookRunResult, MaintenanceState, RemoteCommandResult, ServiceState, SshCheck } from '../contract/observations';
import { Errors } from '../contract/errors';
import { shellScript } from './argv';

/** Output kept per stream in a result (it lands in workflow history): the tail, if longer. */
export const MAX_OUTPUT_CHARS = 64 * 1024;
const DEFAULT_COMMAND_TIMEOUT_SECONDS = 300;

// ---------------------------------------------------------------------------------------------
// Host keys

export interface PinnedKey {
  type: string;
  blob: Buffer;
  fingerprint: string;
}

/** "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Parse an OpenSSH public key line ("ssh-ed25519 AAAA… comment"). */
export function parsePinnedKey(line: string): PinnedKey {
  const [type, b64] = line.trim().split(/\s+/);
  const blob = Buffer.from(b64 ?? '', 'base64');
  // The blob starts with its own type name (uint32 length + string); it must agree with the line.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  const inner = len >= 0 && 4 + len <= blob.length ? blob.subarray(4, 4 + len).toString('latin1') : '';
  if (!type || inner !== type) throw configError(`pinned host key is not a valid OpenSSH public key of type ${JSON.stringify(type)}`);
  return { type, blob, fingerprint: fingerprint(blob) };
}

/** Host key algorithms to offer for a pinned key, so the server presents exactly that key. */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

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

/** Connect to a host of the cluster with its pinned key; throws SshConnectError. */
export async function connectHost(rt: Runtime, call: Call, cluster: string, hostName: string): Promise<OpenSession> {
  const c = call.top.cluster(cluster);
  const host = call.top.host(cluster, hostName);
  const pinned = parsePinnedKey(host.hostKey);
  const privateKey = await call.secrets.get(c.ssh.privateKey, `ssh.privateKey of cluster "${cluster}"`);
  const passphrase = c.ssh.passphrase ? await call.secrets.get(c.ssh.passphrase, `ssh.passphrase of cluster "${cluster}"`) : undefined;
  const parsed = ssh2utils.parseKey(privateKey, passphrase);
  if (parsed instanceof Error) {
    throw configError(`the SSH private key from ${describeRef(c.ssh.privateKey)} (ssh.privateKey of cluster "${cluster}") cannot be used: ${parsed.message}`);
  }
  let presented: string | undefined;
  try {
    const session = await rt.ssh({
      host: host.address,
      port: host.port,
      username: host.user ?? c.ssh.user,
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
    return { session, host, name: hostName, key: pinned };
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
    const what = outcome === 'auth-failed' ? `authentication as ${host.user ?? c.ssh.user} refused by` : 'cannot connect to';
    throw new SshConnectError(`ssh: ${what} ${where(hostName, host)}: ${errorMessage(err)}`, outcome);
  }
}

function tail(s: string): string {
  return s.length > MAX_OUTPUT_CHARS ? `[…${s.length - MAX_OUTPUT_CHARS} characters cut]${s.slice(-MAX_OUTPUT_CHARS)}` : s;
}

/** Run one argv on an open session; heartbeats while it runs. Non-zero exit is data. */
export async function execArgv(open: OpenSession, argv: readonly string[], timeoutSeconds: number): Promise<RemoteCommandResult> {
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
  return {
    host: open.name,
    command,
    exitCode: r.code,
    signal: r.signal,
    timedOut: r.timedOut,
    stdout: tail(r.stdout),
    stderr: tail(r.timedOut ? `${r.stderr}${r.stderr ? '\n' : ''}timed out after ${timeoutSeconds}s` : r.stderr),
  };
}

/** Open, use, always close. Connection failures surface as SshConnectError. */
export async function withHost<T>(rt: Runtime, call: Call, cluster: string, hostName: string, fn: (open: OpenSession) => Promise<T>): Promise<T> {
  const open = await connectHost(rt, call, cluster, hostName);
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

/** runRemote's core, for use by other activities: connection problems thrown as action errors. */
export function runOnHost(
  rt: Runtime,
  call: Call,
  cluster: string,
  hostName: string,
  argv: readonly string[],
  timeoutSeconds: number,
): Promise<RemoteCommandResult> {
  return onHost(rt, call, cluster, hostName, (open) => execArgv(open, argv, timeoutSeconds));
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

/** Raw bytes per write command: 48 KiB is 64 KiB of base64, well inside one command line (128 KiB). */
const WRITE_CHUNK = 48 * 1024;
/**
 * One chunk of a write: decoded into <path>.switchyard-tmp (the first chunk creates it 0600, making
 * the parent directory if need be); with a mode, the last chunk sets it, renames the temp file over
 * the path (one rename(2): a reader sees the old file or the new one, never a part) and prints the
 * result's sha256.
 */
export const WRITE_SH = [
  'set -e',
  't="$1.switchyard-tmp"',
  'if [ "$4" = first ]; then mkdir -p -- "$(dirname -- "$1")"; umask 077; printf %s "$2" | base64 -d > "$t"; else printf %s "$2" | base64 -d >> "$t"; fi',
  'if [ -n "$3" ]; then chmod "$3" -- "$t"; mv -f -- "$t" "$1"; sha256sum -- "$1"; fi',
].join('\n');

/** Write a file atomically (temp file + rename) with the given octal mode; checks the sha256 written. */
export async function writeFileAtomic(open: OpenSession, path: string, content: Buffer, mode: string): Promise<void> {
  const n = Math.max(1, Math.ceil(content.length / WRITE_CHUNK));
  let last: RemoteCommandResult | undefined;
  for (let i = 0; i < n; i++) {
    const b64 = content.subarray(i * WRITE_CHUNK, (i + 1) * WRITE_CHUNK).toString('base64');
    last = await mustExec(open, shellScript(WRITE_SH, path, b64, i === n - 1 ? mode : '', i === 0 ? 'first' : 'append'), `writing ${path}`);
    heartbeat({ host: open.name, writing: path });
  }
  // sha256sum prefixes the line with a backslash when it had to escape the file name.
  const written = last?.stdout.trim().split(/\s+/)[0]?.replace(/^\\/, '');
  const want = createHash('sha256').update(content).digest('hex');
  if (written !== want) throw new Error(`writing ${path} on ${open.name}: the file written has sha256 ${written ?? '?'}, not the content's ${want}`);
}

/**
 * Hold an exclusive flock(2) on $1 (a file or directory that exists) for as long as this
 * command's standard input stays open: the lock lives and dies with the SSH channel, so a worker
 * that is killed (its connection closed) leaves no lock behind. Prints "waiting" when another
 * holder has it, "locked" once held; exits 75 when it was not free within $2 seconds. A host
 * without flock(1) prints "noflock" and holds nothing.
 */
const HOLD_LOCK_SH = [
  'exec 9<"$1" || exit 1',
  'if ! command -v flock >/dev/null 2>&1; then echo noflock; exec cat >/dev/null; fi',
  'if flock -n -x 9; then echo locked; else echo waiting; flock -x -w "$2" 9 || exit 75; echo locked; fi',
  'exec cat >/dev/null',
].join('\n');

/** How long a held lock's channel may stay open: as long as the longest activity. */
const LOCK_CHANNEL_MS = 13 * 3600_000;

export interface HostLock {
  /** false: the host has no flock(1), nothing is held (the caller says so). */
  held: boolean;
  /** Seconds it waited for another holder (0 when it was free). */
  waitedSeconds: number;
  /** Let go (closes the holder's standard input); never throws. */
  release(): Promise<void>;
}

/**
 * Take an exclusive lock on a path of the host, waiting (with heartbeats) up to `waitSeconds`
 * while another holder has it. Two runs that would otherwise share something on the host (a
 * drill's scratch copy of one backup) take turns instead of stepping on each other.
 */
export async function holdHostLock(open: OpenSession, path: string, waitSeconds: number, what: string): Promise<HostLock> {
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
  const channel = open.session.execStream(commandLine(shellScript(HOLD_LOCK_SH, path, String(waitSeconds))), {
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
      if (ended.code === 75) throw new Error(`${what}: the lock on ${path} on ${open.name} was held by another run for ${waitSeconds} s`);
      throw new Error(
        `${what}: taking the lock on ${path} on ${open.name} failed (${ended.timedOut ? 'timed out' : `exited ${ended.code ?? `by signal ${ended.signal ?? '?'}`}`})${out ? `: ${out}` : ''}`,
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
  return out ? `${status}: ${out.slice(0, 500)}` : status;
}

// ---------------------------------------------------------------------------------------------
// Activities

function serviceOf(top: Resolver, cluster: string, site: string, service: string): { s: SiteConfig; svc: ServiceConfig } {
  const s = top.site(cluster, site);
  if (!Object.prototype.hasOwnProperty.call(s.services, service)) {
    const known = Object.keys(s.services);
    throw configError(
      `unknown service ${JSON.stringify(service)} at site "${site}" of cluster "${cluster}"; known: ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'}`,
    );
  }
  return { s, svc: s.services[service] };
}

function hookOf(top: Resolver, cluster: string, site: string, hook: string): SiteConfig['hooks']['afterPromote'][number] {
  const hooks = top.site(cluster, site).hooks.afterPromote;
  const h = hooks.find((x) => x.name === hook);
  if (!h) {
    const known = hooks.map((x) => `"${x.name}"`);
    throw configError(
      `unknown hook ${JSON.stringify(hook)} in sites.${site}.hooks.afterPromote of cluster "${cluster}"; known: ${known.length ? known.join(', ') : 'none'}`,
    );
  }
  return h;
}

function maintenanceOf(top: Resolver, cluster: string, site: string): NonNullable<SiteConfig['maintenance']> {
  const s = top.site(cluster, site);
  if (!s.maintenance) throw configError(`site "${site}" of cluster "${cluster}" has no maintenance commands configured (sites.${site}.maintenance)`);
  return s.maintenance;
}

export function remoteActivities(rt: Runtime) {
  const verifyMs = rt.timeouts.verifyMs;

  /** Status of a service over an open session: exit 0 running, anything else stopped. */
  const readService = async (open: OpenSession, svc: ServiceConfig) => {
    const r = await execArgv(open, svc.status, 60);
    return { running: r.exitCode === 0, r };
  };

  const setService = async (call: Call, input: { cluster: string; site: string; service: string }, want: boolean): Promise<ServiceState> => {
    const { svc } = serviceOf(call.top, input.cluster, input.site, input.service);
    const base = { site: input.site, service: input.service, host: svc.host };
    const verb = want ? 'start' : 'stop';
    try {
      return await withHost(rt, call, input.cluster, svc.host, async (open) => {
        const before = await readService(open, svc);
        if (before.running === want) return { ...base, running: want, changed: false, detail: `already ${want ? 'running' : 'stopped'}` };
        const act = await execArgv(open, want ? svc.start : svc.stop, 120);
        const after = await pollUntil(
          () => readService(open, svc),
          (v) => v.running === want,
          verifyMs,
        );
        if (after.running !== want) {
          throw new Error(
            `service "${input.service}" at site "${input.site}" is still ${want ? 'stopped' : 'running'} after ${verb} (${verb} ${brief(act)}; status ${brief(after.r)})`,
          );
        }
        rt.log.info(`service ${verb}ed`, { cluster: input.cluster, site: input.site, service: input.service, host: svc.host });
        return { ...base, running: want, changed: true, detail: `${verb} ${brief(act)}; status now ${want ? 'running' : 'stopped'}` };
      });
    } catch (err) {
      throw err instanceof SshConnectError ? err.toActionError() : err;
    }
  };

  const readMaintenanceCommand = async (
    call: Call,
    cluster: string,
    m: NonNullable<SiteConfig['maintenance']>,
  ): Promise<{ on: boolean | null; detail: string }> => {
    try {
      return await withHost(rt, call, cluster, m.host, async (open) => {
        const r = await execArgv(open, m.status, 60);
        return { on: r.exitCode === 0, detail: `status command on ${m.host} ${brief(r)}` };
      });
    } catch (err) {
      if (err instanceof SshConnectError) return { on: null, detail: err.message };
      throw err;
    }
  };

  const readHttp = async (url: string | undefined): Promise<{ httpStatus: number | null; detail: string }> => {
    if (!url) return { httpStatus: null, detail: 'no app URL configured' };
    try {
      const res = await rt.fetch(url, { method: 'GET', redirect: 'manual', signal: requestSignal(rt.timeouts.httpMs) });
      await res.body?.cancel().catch(() => undefined);
      return { httpStatus: res.status, detail: `app answers ${res.status}` };
    } catch (err) {
      return { httpStatus: null, detail: `app unreachable: ${errorMessage(err)}` };
    }
  };

  return {
    /** Can the worker reach the host, with the pinned key, and run a command? Never throws for the target's state. */
    sshCheck: rt.activity(async (input: { cluster: string; host: string }, call): Promise<SshCheck> => {
      const host = call.top.host(input.cluster, input.host);
      const base = { host: input.host, site: host.site ?? null, address: host.address, port: host.port };
      try {
        return await withHost(rt, call, input.cluster, input.host, async (open) => {
          const r = await execArgv(open, ['uname', '-n'], 15);
          const ok = r.exitCode === 0;
          return {
            ...base,
            ok,
            outcome: ok ? 'ok' : 'error',
            detail: `key ${open.key.fingerprint} matches the pinned key; ${ok ? `uname -n: ${r.stdout.trim()}` : `uname -n ${brief(r)}`}`,
          };
        });
      } catch (err) {
        if (err instanceof SshConnectError) return { ...base, ok: false, outcome: err.outcome, detail: err.message };
        if (err instanceof ApplicationFailure) throw err; // configuration, not the target's state
        return { ...base, ok: false, outcome: 'error', detail: errorMessage(err) };
      }
    }),

    /** Run one command (argv, quoted by shell.ts). Non-zero exit and timeouts are returned. */
    runRemote: rt.activity(async (input: { cluster: string; host: string; argv: string[]; timeoutSeconds?: number }, call): Promise<RemoteCommandResult> => {
      if (!Array.isArray(input.argv) || input.argv.length === 0 || !input.argv.every((a) => typeof a === 'string')) {
        throw configError('runRemote needs argv: a non-empty list of strings');
      }
      return runOnHost(rt, call, input.cluster, input.host, input.argv, input.timeoutSeconds ?? DEFAULT_COMMAND_TIMEOUT_SECONDS);
    }),

    /**
     * Run one afterPromote hook of a site (by name) on its host with its timeout. With a `check`
     * command, that runs first (bounded by hookCheckTimeoutSeconds): exit 0 means already done and
     * the command is not run (`alreadyDone`); a check that times out or is killed throws (whether
     * the hook ran cannot be told, so it is not run blind). Non-zero exits and timeouts of the
     * command are returned: the workflow judges.
     */
    runHook: rt.activity(async (input: { cluster: string; site: string; hook: string }, call): Promise<HookRunResult> => {
      const h = hookOf(call.top, input.cluster, input.site, input.hook);
      const base = { hook: h.name, site: input.site };
      return onHost(rt, call, input.cluster, h.host, async (open) => {
        if (h.check) {
          const checkSeconds = hookCheckTimeoutSeconds(h.timeoutSeconds);
          const c = await execArgv(open, h.check, checkSeconds);
          if (c.exitCode === 0) {
            rt.log.info('hook already done', { cluster: input.cluster, site: input.site, hook: h.name, host: h.host });
            return { ...c, ...base, alreadyDone: true };
          }
          if (c.exitCode === null) {
            throw new Error(
              `check command of hook "${h.name}" (sites.${input.site}.hooks.afterPromote) on ${h.host} ${brief(c)}: cannot tell whether the hook already ran, so it was not run`,
            );
          }
        }
        const r = await execArgv(open, h.command, h.timeoutSeconds);
        rt.log.info('hook ran', { cluster: input.cluster, site: input.site, hook: h.name, host: h.host, exitCode: r.exitCode, timedOut: r.timedOut ?? false });
        return { ...r, ...base, alreadyDone: false };
      });
    }),

    serviceStatus: rt.activity(async (input: { cluster: string; site: string; service: string }, call): Promise<ServiceState> => {
      const { svc } = serviceOf(call.top, input.cluster, input.site, input.service);
      const base = { site: input.site, service: input.service, host: svc.host };
      try {
        return await withHost(rt, call, input.cluster, svc.host, async (open) => {
          const { running, r } = await readService(open, svc);
          return { ...base, running, detail: `status ${brief(r)}` };
        });
      } catch (err) {
        if (err instanceof SshConnectError) return { ...base, running: null, detail: err.message };
        throw err;
      }
    }),

    /** Start a service unless it runs; verified by its status command afterwards. */
    serviceStart: rt.activity((input: { cluster: string; site: string; service: string }, call) => setService(call, input, true)),
    /** Stop a service unless it is stopped; verified by its status command afterwards. */
    serviceStop: rt.activity((input: { cluster: string; site: string; service: string }, call) => setService(call, input, false)),

    /** Maintenance flag by its status command, and the app's HTTP status. Never throws for the target's state. */
    maintenanceStatus: rt.activity(async (input: { cluster: string; site: string }, call): Promise<MaintenanceState> => {
      const s = call.top.site(input.cluster, input.site);
      const [cmd, http] = await Promise.all([
        s.maintenance
          ? readMaintenanceCommand(call, input.cluster, s.maintenance)
          : Promise.resolve({ on: null, detail: 'no maintenance commands configured' }),
        readHttp(s.app?.url),
      ]);
      return { site: input.site, on: cmd.on, httpStatus: http.httpStatus, detail: `${cmd.detail}; ${http.detail}` };
    }),

    /** Turn maintenance on or off unless it already is; verified by reading the status command back. */
    maintenanceSet: rt.activity(async (input: { cluster: string; site: string; on: boolean }, call): Promise<MaintenanceState> => {
      if (typeof input.on !== 'boolean') throw configError('maintenanceSet needs "on": true or false');
      const s = call.top.site(input.cluster, input.site);
      const m = maintenanceOf(call.top, input.cluster, input.site);
      const want = input.on;
      const word = want ? 'on' : 'off';
      let changed: boolean;
      let actDetail: string;
      try {
        ({ changed, actDetail } = await withHost(rt, call, input.cluster, m.host, async (open) => {
          const before = await execArgv(open, m.status, 60);
          if ((before.exitCode === 0) === want) return { changed: false, actDetail: `maintenance already ${word}` };
          const act = await execArgv(open, want ? m.on : m.off, 120);
          const after = await pollUntil(
            () => execArgv(open, m.status, 60),
            (r) => (r.exitCode === 0) === want,
            verifyMs,
          );
          if ((after.exitCode === 0) !== want) {
            throw new Error(
              `maintenance at site "${input.site}" still reads ${want ? 'off' : 'on'} after turning it ${word} (${word} command ${brief(act)}; status ${brief(after)})`,
            );
          }
          rt.log.info(`maintenance turned ${word}`, { cluster: input.cluster, site: input.site, host: m.host });
          return { changed: true, actDetail: `maintenance turned ${word} (${brief(act)})` };
        }));
      } catch (err) {
        throw err instanceof SshConnectError ? err.toActionError() : err;
      }
      const http = await readHttp(s.app?.url);
      const expected = want ? 503 : 200;
      const agree = http.httpStatus === null ? '' : http.httpStatus === expected ? ' (as expected)' : ` (expected ${expected})`;
      return { site: input.site, on: want, httpStatus: http.httpStatus, changed, detail: `${actDetail}; ${http.detail}${agree}` };
    }),
  };
}
