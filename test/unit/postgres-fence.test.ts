/**
 * The pieces of "a fence that lasts" and "checks that fail closed" that are pure functions or a
 * plain script: how a status read is judged, how an unreachable node is classified, the data-loss
 * gate's freshness, the fence marker's parsing, and the sandbox's STONITH script run for real
 * against processes started here.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseFenceRead } from '../../src/activities/postgres/fence';
import { Runtime } from '../../src/activities/runtime';
import { unreachableKind } from '../../src/activities/postgres/connect';
import type { PgNodeStatus } from '../../src/contract/observations';
import { lossGate, type DataLoss } from '../../src/workflows/lib/data-loss';
import { cannotWrite, nodeState } from '../../src/workflows/lib/node-state';

const base: PgNodeStatus = { cluster: 'c', node: 'n', site: 's', reachable: false };

describe('nodeState: checks fail closed', () => {
  it('only a refused connection is "down"; silence is "no-answer"; anything else unreadable is "unknown"', () => {
    assert.equal(nodeState({ ...base, unreachable: 'refused', error: 'connect ECONNREFUSED' }), 'down');
    assert.equal(nodeState({ ...base, unreachable: 'no-answer', error: 'timeout' }), 'no-answer');
    assert.equal(nodeState({ ...base, unreachable: 'unknown', error: 'password authentication failed' }), 'unknown');
    // Recorded before the field existed, a failed read, a node that answered without its role.
    assert.equal(nodeState({ ...base, error: 'connect ECONNREFUSED' }), 'unknown');
    assert.equal(nodeState(null), 'unknown');
    assert.equal(nodeState({ ...base, reachable: true, error: 'canceling statement due to statement timeout' }), 'unknown');
    for (const s of ['unknown', 'primary'] as const) assert.equal(cannotWrite(s), false, s);
    for (const s of ['down', 'no-answer', 'standby', 'standby-streaming'] as const) assert.equal(cannotWrite(s), true, s);
  });

  it('roles, and streaming from the expected primary only', () => {
    assert.equal(nodeState({ ...base, reachable: true, inRecovery: false }), 'primary');
    const st: PgNodeStatus = {
      ...base,
      reachable: true,
      inRecovery: true,
      walReceiver: { status: 'streaming', senderHost: '10.0.0.2', senderPort: 5432, slotName: 'x' },
    };
    assert.equal(nodeState(st), 'standby-streaming');
    assert.equal(nodeState(st, { host: '10.0.0.2', port: 5432 }), 'standby-streaming');
    assert.equal(nodeState(st, { host: '10.0.0.3', port: 5432 }), 'standby');
    assert.equal(nodeState({ ...st, walReceiver: null }), 'standby');
  });
});

describe('unreachableKind', () => {
  const rt = (tcp: 'refused' | 'accepted' | 'no-answer' | 'error') => {
    const dialled: string[] = [];
    return {
      dialled,
      rt: new Runtime({
        topology: () => ({ version: 1, clusters: {} }) as never,
        tcpContact: async (host, port) => {
          dialled.push(`${host}:${port}`);
          return tcp;
        },
      }),
    };
  };
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

  it('a refused connection is "refused" without dialling again', async () => {
    const r = rt('accepted');
    assert.equal(await unreachableKind(r.rt, err('connect ECONNREFUSED', 'ECONNREFUSED'), '10.0.0.1', 5432), 'refused');
    assert.deepEqual(r.dialled, []);
  });

  it('a refused login or a server error is "unknown": something answers', async () => {
    const r = rt('refused');
    assert.equal(await unreachableKind(r.rt, err('password authentication failed', '28P01'), '10.0.0.1', 5432), 'unknown');
    assert.equal(await unreachableKind(r.rt, err('the database system is starting up', '57P03'), '10.0.0.1', 5432), 'unknown');
  });

  it('a driver timeout is told apart by a bare TCP connection: accepted (frozen) is "unknown", silence is "no-answer"', async () => {
    assert.equal(await unreachableKind(rt('accepted').rt, err('timeout expired'), '10.0.0.1', 5432), 'unknown');
    assert.equal(await unreachableKind(rt('no-answer').rt, err('timeout expired'), '10.0.0.1', 5432), 'no-answer');
    assert.equal(await unreachableKind(rt('refused').rt, err('Connection terminated unexpectedly'), '10.0.0.1', 5432), 'refused');
    assert.equal(await unreachableKind(rt('error').rt, err('timeout expired'), '10.0.0.1', 5432), 'unknown');
    // Silent on its port but its host answers (a frozen server whose listen queue is full): unknown.
    const seen: string[] = [];
    const mixed = new Runtime({
      topology: () => ({ version: 1, clusters: {} }) as never,
      tcpContact: async (host, port) => (seen.push(`${host}:${port}`), port === 5432 ? 'no-answer' : 'accepted'),
    });
    assert.equal(await unreachableKind(mixed, err('timeout expired'), '10.0.0.1', 5432, { host: '10.0.0.1', port: 22 }), 'unknown');
    assert.deepEqual(seen, ['10.0.0.1:5432', '10.0.0.1:22']);
    assert.equal(await unreachableKind(rt('no-answer').rt, err('timeout expired'), '10.0.0.1', 5432, { host: '10.0.0.1', port: 22 }), 'no-answer');
    // A reset connection that then goes silent: it answered once, so not "no-answer".
    assert.equal(await unreachableKind(rt('no-answer').rt, err('read ECONNRESET', 'ECONNRESET'), '10.0.0.1', 5432), 'unknown');
  });
});

describe('lossGate: a lower bound counts only while its reading is fresh', () => {
  const loss = (o: Partial<DataLoss>): DataLoss => ({
    bytes: 0,
    exact: false,
    source: 'readiness',
    oldPrimaryLsn: '0/1',
    standbyLsn: '0/1',
    observedAt: null,
    detail: '',
    ...o,
  });
  const now = Date.parse('2026-12-01T12:00:00Z');

  it('exact within the threshold: not asked, however old', () => {
    assert.equal(lossGate(loss({ exact: true, source: 'shutdown-checkpoint' }), 0, 10, now).ask, false);
  });
  it('unknown or past the threshold: asked', () => {
    assert.equal(lossGate(loss({ bytes: null }), 0, 10, now).ask, true);
    assert.match(lossGate(loss({ bytes: 100, exact: true }), 0, 10, now).why, /100 bytes is past the threshold of 0/);
  });
  it('"0 bytes at least" from a reading older than the freshness is asked, younger is not', () => {
    const stale = lossGate(loss({ observedAt: '2026-12-01T11:00:00Z' }), 0, 10, now);
    assert.equal(stale.ask, true);
    assert.match(stale.why, /lower bound, from a reading 3600 s old \(older than the 10 s freshness\)/);
    assert.equal(lossGate(loss({ observedAt: '2026-12-01T11:59:55Z', source: 'live-reading' }), 0, 10, now).ask, false);
  });
  it('a lower bound of unknown age (a crash checkpoint) is asked', () => {
    assert.equal(lossGate(loss({ source: 'crash-checkpoint', observedAt: null }), 0, 10, now).ask, true);
  });
});

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
