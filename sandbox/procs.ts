/**
 * Processes for the sandbox: spawning as the run-as user, liveness from /proc, signals to
 * process groups, and finding every process that belongs to a sandbox (for `down`).
 * Linux only (reads /proc), like the sandbox itself.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, fchownSync } from 'node:fs';
import { Socket } from 'node:net';
import { userInfo } from 'node:os';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Blocking sleep, for process 'exit' handlers that cannot wait on promises. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---------------------------------------------------------------------------------------------
// The run-as user

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
  home: string;
  /** True when we are root and start the sandbox's processes as `user` (setuid in the child). */
  switching: boolean;
}

function passwdEntry(user: string): { uid: number; gid: number; home: string } | null {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 7) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
  }
  return null;
}

/**
 * PostgreSQL refuses to run as root, so as root the sandbox runs PostgreSQL, sshd and the rest
 * as the unprivileged OS user `postgres` (Debian's postgresql package creates it); otherwise as
 * the current user.
 */
export function resolveRunAs(): RunAs {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) {
    const me = userInfo();
    return { user: me.username, uid: me.uid, gid: me.gid, home: me.homedir, switching: false };
  }
  const pg = passwdEntry('postgres');
  if (!pg)
    throw new Error(
      'sandbox: running as root, and PostgreSQL refuses to run as root, so the sandbox runs it (and sshd, the apps and services) ' +
        'as the OS user "postgres", which does not exist on this machine. Install Debian\'s postgresql package (it creates the user) ' +
        'or create it: useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres',
    );
  if (pg.uid === 0) throw new Error('sandbox: the OS user "postgres" has uid 0; it must be an unprivileged user');
  return { user: 'postgres', uid: pg.uid, gid: pg.gid, home: pg.home, switching: true };
}

/** The current user, for the shared services (temporal, moto, haproxy) that need no other. */
export function selfRunAs(): RunAs {
  const me = userInfo();
  return { user: me.username, uid: me.uid, gid: me.gid, home: me.homedir, switching: false };
}

/** A clean environment for processes of the sandbox: nothing of the caller's PG*, AWS_* … leaks in. */
export function baseEnv(runAs: RunAs, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
    HOME: runAs.home,
    USER: runAs.user,
    LOGNAME: runAs.user,
    LANG: 'C.UTF-8',
    TZ: process.env.TZ ?? 'UTC',
    ...extra,
  };
}

function idOptions(runAs: RunAs): { uid?: number; gid?: number } {
  return runAs.switching ? { uid: runAs.uid, gid: runAs.gid } : {};
}

// ---------------------------------------------------------------------------------------------
// Running commands

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  runAs?: RunAs;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Run a program to completion (argument array, no shell). Never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? '/',
      env: opts.env ?? (opts.runAs ? baseEnv(opts.runAs) : process.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.runAs ? idOptions(opts.runAs) : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          stderr += `\n(timed out after ${opts.timeoutMs} ms; killed)`;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : null;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function describeRun(cmd: string, r: RunResult): string {
  const how = r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
  const out = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n');
  return `${cmd.split('/').pop()} failed (${how})${out ? `:\n${out}` : ''}`;
}

/**
 * Start a long-running process detached from us (own session and process group, so it survives
 * the CLI exiting and one signal to the group reaches all of it), output appended to `log`.
 */
export async function spawnDetached(
  cmd: string,
  args: readonly string[],
  opts: { runAs: RunAs; log: string; cwd: string; env?: NodeJS.ProcessEnv },
): Promise<number> {
  const fd = openSync(opts.log, 'a', 0o644);
  try {
    if (opts.runAs.switching) fchownSync(fd, opts.runAs.uid, opts.runAs.gid);
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? baseEnv(opts.runAs),
      detached: true,
      stdio: ['ignore', fd, fd],
      ...idOptions(opts.runAs),
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `cannot start ${cmd} as user ${opts.runAs.user}: ${err.code ?? err.message}${err.code === 'EACCES' ? ' (it, or its interpreter, is not executable by that user)' : ''}`,
          ),
        ),
      );
    });
    child.unref();
    return child.pid!;
  } finally {
    closeSync(fd);
  }
}

/** The last lines of a log file ('' when it cannot be read). */
export function tail(file: string, lines = 25): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text
      .split('\n')
      .filter((l, i, a) => l !== '' || i < a.length - 1)
      .slice(-lines)
      .join('\n');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// /proc

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  /** Single-letter state: R, S, D, T (stopped), t, Z (zombie), X, I. */
  state: string;
  /** Non-zero when the process has a controlling terminal. */
  tty: number;
  /** Clock ticks after boot: with the pid, identifies the process across pid reuse. */
  startTime: string;
  uid: number;
  argv: string[];
}

export function readProc(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.length && argv[argv.length - 1] === '') argv.pop();
    const uid = statSync(`/proc/${pid}`).uid;
    return { pid, ppid: Number(f[1]), pgrp: Number(f[2]), state: f[0], tty: Number(f[4]), startTime: f[19], uid, argv };
  } catch {
    return null;
  }
}

export function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const p = readProc(Number(e));
    if (p) out.push(p);
  }
  return out;
}

/** Alive means: exists, not a zombie, and (when given) the same process that was recorded. */
export function isAlive(pid: number | null | undefined, startTime?: string): boolean {
  if (!pid || pid <= 0) return false;
  const p = readProc(pid);
  if (!p || p.state === 'Z' || p.state === 'X') return false;
  return startTime === undefined || p.startTime === startTime;
}

export function isPaused(pid: number | null | undefined): boolean {
  if (!pid) return false;
  const p = readProc(pid);
  return p !== null && (p.state === 'T' || p.state === 't');
}

/** Signal a process group (the process is its leader), falling back to the process itself. */
export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
    return;
  } catch {
    /* not a group leader, or gone */
  }
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

export function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

export function descendantsOf(roots: Iterable<number>, procs: ProcInfo[]): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const out = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop()!;
    for (const c of children.get(pid) ?? []) {
      if (!out.has(c)) {
        out.add(c);
        stack.push(c);
      }
    }
  }
  return out;
}

/** This process and its ancestors: never to be killed by a sweep (the CLI may mention the dir). */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    const p = readProc(pid);
    if (!p) break;
    pid = p.ppid;
  }
  return out;
}

function cwdOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** Pids holding a TCP socket whose local address/port satisfies `match` (IPv4, /proc/net/tcp). */
export function socketOwners(match: (address: string, port: number) => boolean, procs: ProcInfo[]): Set<number> {
  const inodes = new Set<string>();
  let table = '';
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return new Set();
  }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [hexAddr, hexPort] = f[1].split(':');
    const n = parseInt(hexAddr, 16);
    const address = [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
    if (match(address, parseInt(hexPort, 16)) && f[9] !== '0') inodes.add(f[9]);
  }
  const out = new Set<number>();
  if (inodes.size === 0) return out;
  for (const p of procs) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p.pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p.pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) {
          out.add(p.pid);
          break;
        }
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface SweepSpec {
  /** The sandbox directory (absolute, without a trailing slash). */
  dir: string;
  /** Addresses and ports that only this sandbox's processes hold sockets on. */
  ownsSocket: (address: string, port: number) => boolean;
  /** Only processes of this user count by socket (the run-as user: sshd sessions, PostgreSQL). */
  socketUid: number;
  /** Pids known to belong to the sandbox (recorded parts); their descendants belong too. */
  known: number[];
}

/**
 * Every live process that belongs to the sandbox, except this process and its ancestors:
 * - its command line mentions the sandbox dir (as the dir itself or a path inside it);
 * - its working directory is inside the dir and it has no terminal (PostgreSQL backends,
 *   moto; a person's shell that cd'ed there is left alone);
 * - it runs as the run-as user and holds a TCP socket on one of the sandbox's own addresses
 *   and ports (sshd sessions whose listener is gone);
 * - it descends from a known part process.
 */
export function findSandboxProcesses(spec: SweepSpec): ProcInfo[] {
  const procs = listProcs().filter((p) => p.state !== 'Z' && p.state !== 'X');
  const spare = selfAndAncestors();
  const mention = new RegExp(`${escapeRe(spec.dir)}(?![A-Za-z0-9._-])`);
  const found = new Set<number>();
  for (const p of procs) {
    if (p.argv.some((a) => mention.test(a))) found.add(p.pid);
    else if (p.tty === 0) {
      const cwd = cwdOf(p.pid);
      if (cwd && (cwd === spec.dir || cwd.startsWith(spec.dir + '/'))) found.add(p.pid);
    }
  }
  for (const pid of socketOwners(
    spec.ownsSocket,
    procs.filter((p) => p.uid === spec.socketUid),
  ))
    found.add(pid);
  const roots = [...spec.known.filter((pid) => procs.some((p) => p.pid === pid)), ...found];
  for (const pid of roots) found.add(pid);
  for (const pid of descendantsOf(roots, procs)) found.add(pid);
  return procs.filter((p) => found.has(p.pid) && !spare.has(p.pid));
}

// ---------------------------------------------------------------------------------------------
// Network probes (loopback only)

/** Does something accept a TCP connection at address:port? */
export function tcpProbe(address: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, address, () => done(true));
  });
}

/** Read the first bytes a server sends (an SSH banner) within timeoutMs; null when none. */
export function tcpBanner(address: string, port: number, timeoutMs = 1500): Promise<string | null> {
  return new Promise((resolve) => {
    const s = new Socket();
    let settled = false;
    const done = (v: string | null) => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(null));
    s.once('error', () => done(null));
    s.once('data', (d: Buffer) => done(d.toString('latin1')));
    s.connect(port, address);
  });
}
