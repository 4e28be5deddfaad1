/**
 * Small fixtures for the activities' integration tests: temp dirs (named switchyard-test-* so the
 * leak check finds any left behind), free ports on a chosen loopback address, daemons started in
 * their own process group (as the postgres OS user when we are root) and stopped for sure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseTopology } from '../../src/topology/load';
import type { Topology, TopologyInput } from '../../src/topology/schema';

/** Root runs the daemons as this OS user (PostgreSQL refuses root; sshd without root needs it too). */
export const RUN_AS = 'postgres';
const isRoot = process.getuid?.() === 0;

function postgresIds(): { uid: number; gid: number; home: string } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${RUN_AS}:`));
  if (!line) throw new Error(`no OS user "${RUN_AS}"`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

/**
 * spawn() options that run a program as the daemon user when we are root (setuid/setgid in the
 * child, supplementary groups dropped: what `runuser -u postgres --` does, without runuser's
 * two-second pause on every signal it forwards).
 */
function spawnAs(asRunAs: boolean | undefined, env: NodeJS.ProcessEnv | undefined): { uid?: number; gid?: number; env: NodeJS.ProcessEnv } {
  if (!asRunAs || !isRoot) return { env: { ...process.env, ...env } };
  const { uid, gid, home } = postgresIds();
  return { uid, gid, env: { ...process.env, HOME: home, USER: RUN_AS, LOGNAME: RUN_AS, ...env } };
}

export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `switchyard-test-activities-${label}-`));
  if (isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  return dir;
}

/** Give a path to the daemon user (when we are root). */
export function giveToRunAs(...paths: string[]): void {
  if (!isRoot) return;
  const { uid, gid } = postgresIds();
  for (const p of paths) chownSync(p, uid, gid);
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Does something accept a TCP connection there? (the sandbox's probe, shared) */
export { tcpProbe as canConnect } from '../../sandbox/procs';

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run to completion; as the daemon user when `asRunAs`. Throws on a non-zero exit unless `allowFail`. */
export function run(
  cmd: string,
  args: string[],
  opts: { asRunAs?: boolean; env?: NodeJS.ProcessEnv; allowFail?: boolean; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...spawnAs(opts.asRunAs, opts.env), cwd: opts.cwd ?? '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr || stdout}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running process in its own process group; stop() signals the whole group and waits. */
export class Daemon {
  private exited: Promise<void>;
  private alive = true;
  output = '';

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) =>
      child.on('exit', () => {
        this.alive = false;
        resolve();
      }),
    );
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  static start(name: string, cmd: string, args: string[], opts: { asRunAs?: boolean; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Daemon {
    const child = spawn(cmd, args, { ...spawnAs(opts.asRunAs, opts.env), cwd: opts.cwd ?? '/', detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', () => undefined);
    return new Daemon(name, child);
  }

  get running(): boolean {
    return this.alive;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.alive || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM by default (PostgreSQL: pass SIGINT for a fast shutdown); SIGKILL after the timeout. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (!this.alive) return;
    this.signal(sig);
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!killed) {
      this.signal('SIGKILL');
      await this.exited;
    }
  }
}

/** A topology validated exactly as the worker validates its file. */
export function topology(input: TopologyInput): Topology {
  return parseTopology(stringify(input), 'test topology');
}

/** Assert-friendly: the rejection of a promise (fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error & { type?: string; nonRetryable?: boolean }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { type?: string; nonRetryable?: boolean };
  }
  throw new Error('expected a rejection, but the promise resolved');
}
