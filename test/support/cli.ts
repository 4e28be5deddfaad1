/**
 * `switchyard` in a subprocess, as an operator runs it, against a test stage: `--config` the stage's
 * topology, TEMPORAL_ADDRESS its server, none of the caller's SWITCHYARD_* or namespace settings.
 * Every process is started with argv[0] "switchyard-test-cli" so test/zz-leaks.test.ts finds one
 * left behind, is killed after its timeout, and killClis() (call it in `after`) ends any still
 * running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Stage } from './stage';

const REPO = join(__dirname, '../..');
const BIN = join(REPO, 'bin', 'switchyard.js');
const CLI_ARGV0 = 'switchyard-test-cli';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CliProcess {
  proc: ChildProcess;
  /** What it printed on stdout so far. */
  stdout(): string;
  done: Promise<CliResult>;
}

const running = new Set<ChildProcess>();

/** This test's environment without anything that would choose another topology, namespace or user. */
function operatorEnv(st: Stage): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: st.sb.status.temporal.address };
  for (const k of ['SWITCHYARD_CONFIG', 'SWITCHYARD_USER', 'TEMPORAL_NAMESPACE', 'SWITCHYARD_DEBUG']) delete env[k];
  return env;
}

/** `switchyard <args> --config <config>`, as an operator's shell would run it; killed after timeoutMs. */
export function startCli(st: Stage, args: string[], timeoutMs = 180_000): CliProcess {
  const started = Date.now();
  const proc = spawn(process.execPath, [BIN, ...args, '--config', st.configPath], {
    argv0: CLI_ARGV0,
    cwd: REPO,
    env: operatorEnv(st),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliResult>((resolve, reject) => {
    proc.on('error', (e) => {
      clearTimeout(timer);
      running.delete(proc);
      reject(e);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(proc);
      resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - started });
    });
  });
  return { proc, stdout: () => out, done };
}

export const cli = (st: Stage, args: string[], timeoutMs?: number) => startCli(st, args, timeoutMs).done;

/** Everything a run printed, for assertion messages. */
export const shown = (r: CliResult) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

export function killClis(): void {
  for (const p of running) p.kill('SIGKILL');
}
