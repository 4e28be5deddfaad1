/**
 * The sandbox reaper (sandbox/reaper.cjs): when the process it watches dies without taking its
 * sandbox down, it does: every process naming the sandbox dir is killed and the dir removed. Here
 * the "sandbox" is a dir with one process that names it (what `down` sweeps, without starting a
 * whole sandbox), and the watched "test process" is SIGKILLed, as a runner killing a test would.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, it } from 'node:test';
import { isAlive, readProc, sleep } from '../../sandbox/procs';

const REPO = resolve(__dirname, '../..');
const IDLE = 'setInterval(() => undefined, 1000)';
const started: ChildProcess[] = [];
const dirs: string[] = [];

after(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function idle(...args: string[]): ChildProcess {
  const p = spawn(process.execPath, ['-e', IDLE, ...args], { stdio: 'ignore' });
  started.push(p);
  return p;
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(100);
  }
}

it('takes the sandbox down once the process it watches is killed, and not before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-reaper-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'left-by-a-test'), 'x\n');
  const part = idle(join(dir, 'a-part-of-the-sandbox'));
  const watched = idle();
  const info = readProc(watched.pid!);
  assert.ok(info, 'the watched process is running');
  const reaper = spawn(process.execPath, [join(REPO, 'sandbox', 'reaper.cjs'), String(watched.pid), info.startTime, dir], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  started.push(reaper);
  let stderr = '';
  reaper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const reaperExit = new Promise<number | null>((r) => reaper.on('exit', (code) => r(code)));

  await sleep(1500); // three of its checks: the watched process lives, so nothing is touched
  assert.equal(existsSync(dir), true, 'the sandbox dir is still there while its process lives');
  assert.equal(isAlive(part.pid), true, 'the sandbox part still runs while the watched process lives');

  watched.kill('SIGKILL');
  const code = await Promise.race([reaperExit, new Promise<string>((r) => setTimeout(r, 60_000, 'still running after 60 s').unref())]);
  assert.equal(code, 0, `the reaper took it down (stderr: ${stderr})`);
  await until('the sandbox part is killed', () => !isAlive(part.pid));
  assert.equal(existsSync(dir), false, 'the sandbox dir is removed');
  assert.match(stderr, new RegExp(`pid ${watched.pid} is gone; taking the sandbox in .*${dir.split('/').pop()} down`));
});

it('refuses bad usage without touching anything', async () => {
  const r = spawn(process.execPath, [join(REPO, 'sandbox', 'reaper.cjs'), 'not-a-pid', '1', 'relative/dir'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  r.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((res) => r.on('exit', (c) => res(c)));
  assert.equal(code, 2);
  assert.match(stderr, /usage: reaper\.cjs <pid> <pid-start-time> <absolute sandbox dir>/);
});
