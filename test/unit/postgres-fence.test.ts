/**
 * The pieces of "a fence that lasts" that are pure functions or a plain script: the fence
 * marker's parsing (postgres/fence.ts), and the sandbox's STONITH script run for real against
 * processes started here.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseFenceRead } from '../../src/activities/postgres/fence';

describe('parseFenceRead', () => {
  it('reads standby.signal and the marker', () => {
    const r = parseFenceRead(`standby.signal\nmarker\n{"fencedBy":"failover-1","newPrimary":"dc2-db","at":"2026-12-01T00:00:00Z","reason":"dc1 lost power"}\n`);
    assert.deepEqual(r, {
      standbySignal: true,
      marker: { fencedBy: 'failover-1', newPrimary: 'dc2-db', at: '2026-12-01T00:00:00Z', reason: 'dc1 lost power' },
      problem: null,
    });
    assert.deepEqual(parseFenceRead(''), { standbySignal: false, marker: null, problem: null });
  });
  it('an unreadable marker still means fenced', () => {
    const r = parseFenceRead('marker\n{not json');
    assert.equal(r.standbySignal, false);
    assert.ok(r.marker && r.problem);
    assert.equal(r.marker.fencedBy, '?');
  });
});

describe('sandbox/bin/stonith.cjs', () => {
  const script = resolve(__dirname, '../../sandbox/bin/stonith.cjs');

  it('SIGKILLs every process naming the host directory and their children, paused ones too; others live', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-stonith-'));
    const hostDir = join(dir, 'dc1-db');
    const other = join(dir, 'dc2-db');
    mkdirSync(hostDir);
    // A "postmaster" (names the host dir) with a child, and a process of another host.
    const parent = spawn(
      process.execPath,
      [
        '-e',
        'require("child_process").spawn(process.execPath, ["-e", "setInterval(()=>{},1000)"], { stdio: "ignore" }); setInterval(() => {}, 1000)',
        `${hostDir}/conf`,
      ],
      { stdio: 'ignore' },
    );
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', `${other}/conf`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 400));
      process.kill(parent.pid!, 'SIGSTOP');
      const r = spawnSync(process.execPath, [script, hostDir], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /powered off dc1-db: [2-9]\d* processes killed|powered off dc1-db: \d+ processes killed/);
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return spawnSync('sh', ['-c', `grep -q '^State:.*Z' /proc/${pid}/status`]).status !== 0;
        } catch {
          return false;
        }
      };
      assert.equal(alive(parent.pid!), false, 'the host process is gone');
      assert.equal(alive(bystander.pid!), true, 'the other host is untouched');
      assert.ok(existsSync(join(hostDir, 'powered-off')), 'the host stays powered off (the sandbox does not restart it)');
      assert.equal(spawnSync(process.execPath, [script, 'relative']).status, 2, 'a relative path is refused');
    } finally {
      for (const p of [parent, bystander]) {
        try {
          p.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
