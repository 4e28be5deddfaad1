/**
 * `switchyard worker` in its own process, as an operator runs it, for tests: its JSON log lines
 * parsed as they arrive, waits on a line, and a stop that always ends it.
 *
 *   const w = startWorkerProcess({ configPath, address: env.address });
 *   await w.waitFor((l) => l.msg === 'worker started');
 *   …
 *   const { code } = await w.stop();           // SIGTERM, SIGKILL after 20 s; resolves on exit
 *
 * Every started worker is killed whatever the test does: `stopWorkerProcesses()` (call it in
 * `after`, or pass `after` to have it registered), process exit, SIGINT/SIGTERM, and a detached
 * reaper that kills it if the test process is killed outright. Its command line starts with
 * "switchyard-test-worker" (argv[0]), so test/zz-leaks.test.ts finds one that was left behind.
 *
 * The worker always polls task queue "switchyard" (TASK_QUEUE in src/worker.ts): `switchyard
 * worker` has no option to choose another, so neither has this helper.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join, resolve } from 'node:path';
import { readProc } from '../../sandbox/procs';

export type LogLine = Record<string, unknown>;
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartWorkerOptions {
  /** The topology file (`--config`). */
  configPath: string;
  /** Temporal frontend host:port (`--address`). */
  address: string;
  /** Added to the environment (default SWITCHYARD_LOG_LEVEL=info). */
  env?: NodeJS.ProcessEnv;
  /** Register the stop with this (node:test's `after` at top level, or a test's `t.after`). */
  after?: (fn: () => Promise<unknown>) => void;
}

export interface WorkerProcess {
  proc: ChildProcessWithoutNullStreams;
  /** Every stdout line, parsed (stdout carries JSON log lines only). */
  lines: LogLine[];
  /** Everything it printed, in order: stdout lines as they are, stderr lines as "stderr: …", stdout lines that are not JSON as "stdout (not JSON): …". */
  raw: string[];
  /** The first line (seen or to come) that satisfies pred; rejects after ms (default 60 s) or when the worker exits first. */
  waitFor(pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>;
  /** Resolves when the worker has exited, however that happened. */
  exited(): Promise<ExitStatus>;
  /** Send a signal (default SIGKILL); resolves when it has exited. */
  kill(signal?: NodeJS.Signals): Promise<ExitStatus>;
  /** SIGTERM (the worker drains and exits 0), then SIGKILL after 20 s; resolves on exit. */
  stop(): Promise<ExitStatus>;
}

const REPO = resolve(__dirname, '../..');
const BIN = join(REPO, 'bin', 'switchyard.js');
/** argv[0] of every worker this module starts: the leak check looks for "switchyard-test-". */
export const WORKER_ARGV0 = 'switchyard-test-worker';
const STOP_GRACE_MS = 20_000;

/** Running workers, with the pid of the reaper watching each. */
const live = new Map<WorkerProcess, number | undefined>();

// ---------------------------------------------------------------------------------------------
// Cleanup whatever happens

function killPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function killAllSync(): void {
  for (const [w, reaper] of live) {
    killPid(w.proc.pid);
    killPid(reaper);
  }
}

let handlersInstalled = false;
function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    const onSignal = () => {
      killAllSync();
      // Alone, we replace the default action (exit); other handlers (test/support/sandbox.ts)
      // exit themselves once their cleanup is done.
      if (process.listenerCount(sig) === 1) process.exit(code);
    };
    process.on(sig, onSignal);
  }
}

/**
 * A detached watcher that SIGTERMs the worker (SIGKILL 20 s later) once this process is gone
 * without doing so, and exits by itself once the worker has. Named in its command line like the
 * worker, so the leak check finds it too; killed as soon as the worker exits.
 */
const REAPER = `
const fs = require('node:fs');
const [, ppid, pstart, wpid, wstart] = process.argv.slice(1);
const alive = (pid, start) => {
  try {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] !== 'Z' && f[0] !== 'X' && f[19] === start;
  } catch { return false; }
};
const kill = (sig) => { try { process.kill(Number(wpid), sig); } catch {} };
const timer = setInterval(() => {
  if (!alive(wpid, wstart)) process.exit(0);
  if (alive(ppid, pstart)) return;
  clearInterval(timer);
  kill('SIGTERM');
  const deadline = Date.now() + ${STOP_GRACE_MS};
  setInterval(() => {
    if (!alive(wpid, wstart)) process.exit(0);
    if (Date.now() > deadline) { kill('SIGKILL'); process.exit(0); }
  }, 200);
}, 500);
`;

function startReaper(workerPid: number): number | undefined {
  const me = readProc(process.pid);
  const worker = readProc(workerPid);
  if (!me || !worker) return undefined;
  const child = spawn(process.execPath, ['-e', REAPER, `${WORKER_ARGV0}-reaper`, String(process.pid), me.startTime, String(workerPid), worker.startTime], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  child.on('error', () => undefined);
  child.unref();
  return child.pid;
}

// ---------------------------------------------------------------------------------------------

export function startWorkerProcess(opts: StartWorkerOptions): WorkerProcess {
  installProcessHandlers();
  const proc = spawn(process.execPath, [BIN, 'worker', '--config', opts.configPath, '--address', opts.address], {
    argv0: WORKER_ARGV0,
    cwd: REPO,
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  proc.stdin.end();

  let status: ExitStatus | null = null;
  const exitWaiters: ((s: ExitStatus) => void)[] = [];
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void; reject: (e: Error) => void }[] = [];
  const output = () => raw.join('\n');

  const splitter = (onLine: (line: string) => void) => {
    let buf = '';
    return {
      data: (d: Buffer) => {
        buf += d.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      },
      flush: () => {
        if (buf) onLine(buf);
        buf = '';
      },
    };
  };
  const out = splitter((line) => {
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      raw.push(`stdout (not JSON): ${line}`);
      return;
    }
    raw.push(line);
    lines.push(parsed);
    for (const w of [...waiters]) {
      if (w.pred(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  });
  const err = splitter((line) => raw.push(`stderr: ${line}`));
  proc.stdout.on('data', out.data);
  proc.stderr.on('data', err.data);

  // Neither the worker nor its pipes keep this process alive: a test file that forgets to stop
  // it still ends, and the exit handler kills it. Whoever waits on it holds a timer meanwhile.
  proc.unref();
  (proc.stdout as unknown as { unref(): void }).unref();
  (proc.stderr as unknown as { unref(): void }).unref();
  (proc.stdin as unknown as { unref?: () => void }).unref?.();

  const finish = (s: ExitStatus) => {
    if (status) return;
    status = s;
    killPid(live.get(w));
    live.delete(w);
    out.flush();
    err.flush();
    for (const x of waiters.splice(0))
      x.reject(new Error(`worker exited (code ${s.code}, signal ${s.signal}) before the log line appeared; output:\n${output()}`));
    for (const r of exitWaiters.splice(0)) r(s);
  };
  // 'close' comes after the exit once stdio has ended, so every line is in by then (unless
  // something it started still holds its stdout: then 2 s after the exit).
  proc.on('close', (code, signal) => finish({ code, signal }));
  proc.on('exit', (code, signal) => setTimeout(() => finish({ code, signal }), 2000).unref());
  proc.on('error', (e) => {
    raw.push(`spawn error: ${e.message}`);
    if (proc.pid === undefined) finish({ code: null, signal: null });
  });

  const exited = (): Promise<ExitStatus> => {
    if (status) return Promise.resolve(status);
    return new Promise((resolveExit) => {
      const hold = setInterval(() => undefined, 1000); // keep this process alive while waiting
      exitWaiters.push((s) => {
        clearInterval(hold);
        resolveExit(s);
      });
    });
  };

  const signal = (sig: NodeJS.Signals) => {
    if (status) return;
    try {
      proc.kill(sig);
    } catch {
      /* gone */
    }
  };

  const w: WorkerProcess = {
    proc,
    lines,
    raw,
    waitFor(pred, ms = 60_000) {
      const hit = lines.find(pred);
      if (hit) return Promise.resolve(hit);
      if (status)
        return Promise.reject(new Error(`worker exited (code ${status.code}, signal ${status.signal}) before the log line appeared; output:\n${output()}`));
      return new Promise<LogLine>((resolveLine, reject) => {
        const t = setTimeout(() => {
          const i = waiters.indexOf(entry);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`log line not seen in ${ms} ms; output:\n${output()}`));
        }, ms);
        const entry = {
          pred,
          resolve: (l: LogLine) => (clearTimeout(t), resolveLine(l)),
          reject: (e: Error) => (clearTimeout(t), reject(e)),
        };
        waiters.push(entry);
      });
    },
    exited,
    kill(sig = 'SIGKILL') {
      signal(sig);
      return exited();
    },
    async stop() {
      if (status) return status;
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), STOP_GRACE_MS);
      try {
        return await exited();
      } finally {
        clearTimeout(t);
      }
    },
  };

  if (proc.pid !== undefined) live.set(w, startReaper(proc.pid));
  opts.after?.(() => w.stop());
  return w;
}

/** Stop every worker this module started that still runs (SIGTERM, then SIGKILL after 20 s). */
export async function stopWorkerProcesses(): Promise<void> {
  await Promise.all([...live.keys()].map((w) => w.stop()));
}
