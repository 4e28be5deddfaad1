/**
 * `switchyard` in a subprocess, as an operator runs it, against a test stage: the stage's topology
 * (`--config`) and Temporal address, none of the caller's SWITCHYARD_* settings. Every process is
 * started with argv[0] "switchyard-test-cli" so test/zz-leaks.test.ts finds one left behind, and
 * killClis() (call it in `after`) ends any still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Stage } from './stage';

const REPO = join(__dirname, '../..');
const BIN = join(REPO, 'bin', 'switchyard.js');
const CLI_ARGV0 = 'switchyard-test-cli';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

export function cli(st: Stage, args: string[], timeoutMs = 180_000): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: st.sb.status.temporal.address };
  for (const k of ['SWITCHYARD_CONFIG', 'SWITCHYARD_USER', 'TEMPORAL_NAMESPACE', 'SWITCHYARD_DEBUG']) delete env[k];
  const proc = spawn(process.execPath, [BIN, ...args, '--config', st.configPath], { argv0: CLI_ARGV0, cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    proc.on('error', (e) => {
      clearTimeout(timer);
      running.delete(proc);
      reject(e);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      running.delete(proc);
      resolve({ code, stdout: out, stderr: err });
    });
  });
}

export const shown = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

export function killClis(): void {
  for (const p of running) p.kill('SIGKILL');
}
