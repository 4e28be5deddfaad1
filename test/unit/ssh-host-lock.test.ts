/**
 * holdHostLock: the flock a run holds on a host path while it works there, its script run by this
 * machine's sh as sshd would run it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { holdHostLock, LockBusyError } from '../../src/activities/ssh/host-lock';
import { type OpenSession } from '../../src/activities/ssh/exec';
import { fakeSession } from '../support/fake-ssh';

describe("holdHostLock (its script run by this machine's sh, as sshd would)", () => {
  /** An SSH session whose commands run here, with the given PATH. */
  const localSession = (path = process.env.PATH ?? ''): OpenSession => ({
    name: 'here',
    host: {} as OpenSession['host'],
    key: {} as OpenSession['key'],
    session: fakeSession(() => assert.fail('not used'), {
      stream: (command, o) =>
        new Promise((resolve) => {
          const child = spawn('/bin/sh', ['-c', command], { env: { PATH: path }, stdio: ['pipe', 'pipe', 'pipe'] });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          if (o.stdin) o.stdin.pipe(child.stdin);
          else child.stdin.end();
          if (o.stdout) child.stdout.pipe(o.stdout as NodeJS.WritableStream & Writable);
          o.signal?.addEventListener('abort', () => child.kill('SIGKILL'), { once: true });
          child.on('close', (code, signal) => resolve({ code, signal, stdout: '', stderr, timedOut: false }));
        }),
    }),
  });

  it('a second holder waits until the first lets go, and says how long', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-lock-'));
    try {
      const first = await holdHostLock(localSession(), dir, 30, 'first');
      assert.deepEqual([first.held, first.waitedSeconds], [true, 0]);
      let secondHeld = false;
      const second = holdHostLock(localSession(), dir, 30, 'second').then((l) => {
        secondHeld = true;
        return l;
      });
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(secondHeld, false, 'the second waits while the first holds');
      await first.release();
      const s = await second;
      assert.equal(s.held, true);
      assert.ok(s.waitedSeconds >= 0.5, `waited ${s.waitedSeconds} s`);
      await s.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('not free within the wait: an error naming the path; a host without flock holds nothing and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-lock-'));
    const bin = mkdtempSync(join(tmpdir(), 'switchyard-test-bin-'));
    try {
      const first = await holdHostLock(localSession(), dir, 30, 'first');
      await assert.rejects(
        holdHostLock(localSession(), dir, 1, 'the drill of backup b1'),
        new RegExp(`^Error: the drill of backup b1: the lock on ${dir} on here was held by another run for 1 s$`),
      );
      await first.release();
      // A PATH with sh and cat but no flock.
      for (const tool of ['sh', 'cat']) symlinkSync(execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
      const none = await holdHostLock(localSession(bin), dir, 30, 'x');
      assert.deepEqual([none.held, none.waitedSeconds], [false, 0]);
      await none.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('shared holders coexist; an exclusive ask that will not wait is busy while one reads, and gets it after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-lock-'));
    try {
      const drill = await holdHostLock(localSession(), dir, 30, 'a drill', { shared: true });
      const restore = await holdHostLock(localSession(), dir, 30, 'a restore', { shared: true });
      assert.equal(restore.waitedSeconds, 0, 'a second reader does not wait for the first');
      await assert.rejects(
        holdHostLock(localSession(), dir, 0, 'retention'),
        (e: Error) => e instanceof LockBusyError && /held by another run for 0 s/.test(e.message),
      );
      await drill.release();
      await assert.rejects(holdHostLock(localSession(), dir, 0, 'retention'), LockBusyError, 'one reader left is enough');
      await restore.release();
      const retention = await holdHostLock(localSession(), dir, 0, 'retention');
      assert.equal(retention.held, true);
      await retention.release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
