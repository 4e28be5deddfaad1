/**
 * The worker's shared SSH connections (ssh/pool.ts), with fake sessions: reuse, the channel
 * limit per connection, a channel that does not open moving the command to a fresh connection,
 * connections retired after a command was given up or the connection died, idle close, close.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SshPool, type PoolableSession } from '../../src/activities/ssh/pool';
import { ChannelNotOpened, type SshExecResult } from '../../src/activities/ssh/session';

const ok = (stdout = ''): SshExecResult => ({ code: 0, signal: null, stdout, stderr: '', timedOut: false });

interface FakeConn extends PoolableSession {
  id: number;
  closed: boolean;
  dead: boolean;
  ran: string[];
  openMs: (number | undefined)[];
}

/** Connections numbered from 1; `answer` decides what a command on connection `id` does. */
function transport(answer: (id: number, command: string) => Promise<SshExecResult> | SshExecResult = () => ok()) {
  const conns: FakeConn[] = [];
  const connect = async (): Promise<PoolableSession> => {
    const c: FakeConn = {
      id: conns.length + 1,
      closed: false,
      dead: false,
      ran: [],
      openMs: [],
      alive: () => !c.dead && !c.closed,
      async exec(command, opts) {
        if (c.closed) throw new ChannelNotOpened('closed');
        c.openMs.push(opts.openMs);
        c.ran.push(command);
        return answer(c.id, command);
      },
      close() {
        c.closed = true;
      },
    };
    conns.push(c);
    return c;
  };
  return { conns, connect };
}

const exec = (s: { exec: PoolableSession['exec'] }, command: string) => s.exec(command, { timeoutMs: 1000 });

describe('SSH pool', () => {
  it('one connection serves calls one after another; another key gets its own', async () => {
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 8, openMs: 500, maxAgeMs: 600_000 });
    const t = transport();
    for (const cmd of ['a', 'b', 'c']) {
      const s = await pool.lease('host1', t.connect);
      assert.equal((await exec(s, cmd)).code, 0);
      s.close();
    }
    assert.equal(t.conns.length, 1, 'three calls, one connection');
    assert.deepEqual(t.conns[0].ran, ['a', 'b', 'c']);
    assert.deepEqual(t.conns[0].openMs, [500, 500, 500], 'every command on a pooled connection has the channel-open bound');
    const other = await pool.lease('host2', t.connect);
    other.close();
    assert.equal(t.conns.length, 2, 'a different host, pin or key never shares a connection');
    pool.close();
    assert.ok(
      t.conns.every((c) => c.closed),
      'close() closes every connection',
    );
  });

  it('at most maxChannels leases share a connection', async () => {
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 3, openMs: 500, maxAgeMs: 600_000 });
    const t = transport();
    const leases = await Promise.all(Array.from({ length: 7 }, () => pool.lease('h', t.connect)));
    assert.equal(pool.size('h'), 3, '7 leases at once, 3 per connection: 3 connections');
    for (const l of leases) l.close();
    const again = await pool.lease('h', t.connect);
    again.close();
    assert.equal(pool.size('h'), 3, 'released connections are kept (until idle) and reused');
    pool.close();
  });

  it('a channel that does not open moves the command to a fresh connection; the stale one is closed', async () => {
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 8, openMs: 100, maxAgeMs: 600_000 });
    const t = transport((id) => {
      if (id === 1 && t.conns[0].ran.length > 1) throw new ChannelNotOpened('no channel opened within 100 ms');
      return ok(`on ${id}`);
    });
    const first = await pool.lease('h', t.connect);
    await exec(first, 'warm');
    first.close();
    const s = await pool.lease('h', t.connect);
    const r = await exec(s, 'fence-read');
    assert.equal(r.stdout, 'on 2', 'the command ran once, on the new connection');
    assert.deepEqual(t.conns[1].openMs, [undefined], 'on the fresh connection it runs as without the pool');
    assert.equal(t.conns[0].closed, true, 'the connection whose channel did not open is closed');
    assert.equal((await exec(s, 'next')).stdout, 'on 2', 'the lease stays on the new connection');
    s.close();
    pool.close();
  });

  it('a fresh connection that cannot be made fails the command with its own error (classified by the caller)', async () => {
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 8, openMs: 100, maxAgeMs: 600_000 });
    const t = transport(() => {
      throw new ChannelNotOpened('silent');
    });
    let refuse = false;
    const connect = async () => {
      if (refuse) throw new Error('ssh: cannot connect to app (10.0.0.5:22): Timed out while waiting for handshake');
      return t.connect();
    };
    const s = await pool.lease('h', connect);
    refuse = true;
    await assert.rejects(exec(s, 'x'), /Timed out while waiting for handshake/);
    s.close();
    assert.equal(pool.size('h'), 0, 'nothing of it stays in the pool');
    assert.equal(t.conns[0].closed, true);
  });

  it('a command given up on (timed out, or no exit status) retires its connection; a dead connection is never leased', async () => {
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 8, openMs: 100, maxAgeMs: 600_000 });
    const t = transport((id, command) => (command === 'hang' ? { code: null, signal: null, stdout: '', stderr: '', timedOut: true } : ok(`on ${id}`)));
    const s = await pool.lease('h', t.connect);
    await exec(s, 'hang');
    s.close();
    assert.equal(t.conns[0].closed, true, 'closed once released: what still runs there ends with it');
    const s2 = await pool.lease('h', t.connect);
    assert.equal((await exec(s2, 'x')).stdout, 'on 2');
    s2.close();
    t.conns[1].dead = true;
    const s3 = await pool.lease('h', t.connect);
    assert.equal((await exec(s3, 'x')).stdout, 'on 3', 'a connection that died is not handed out');
    s3.close();
    assert.equal(t.conns[1].closed, true);
    pool.close();
  });

  it('a connection maxAgeMs old is leased no more: the next call logs in again, what runs on the old one finishes', async () => {
    let now = 1_000;
    const pool = new SshPool({ idleMs: 60_000, maxChannels: 8, openMs: 100, maxAgeMs: 5_000 }, () => now);
    let finish: (r: SshExecResult) => void = () => undefined;
    const t = transport((id, command) => (command === 'slow' ? new Promise<SshExecResult>((r) => (finish = r)) : ok(String(id))));
    const long = await pool.lease('host1', t.connect);
    const slow = exec(long, 'slow');
    now += 4_999;
    const young = await pool.lease('host1', t.connect);
    assert.equal((await exec(young, 'x')).stdout, '1', 'younger than maxAgeMs: shared');
    young.close();
    now += 1;
    const aged = await pool.lease('host1', t.connect);
    assert.equal((await exec(aged, 'y')).stdout, '2', 'maxAgeMs old: a new login');
    aged.close();
    assert.equal(t.conns[0].closed, false, 'the old connection stays open while its command runs');
    finish(ok('done'));
    assert.equal((await slow).stdout, 'done');
    long.close();
    assert.equal(t.conns[0].closed, true, 'and closes once nothing uses it');
    assert.equal(t.conns[1].closed, false);
    pool.close();
  });

  it('a connection in use is not closed by another lease moving away; an idle one closes after idleMs', async () => {
    const pool = new SshPool({ idleMs: 30, maxChannels: 8, openMs: 100, maxAgeMs: 600_000 });
    let releaseLong!: () => void;
    const t = transport((id, command) => {
      if (command === 'long') return new Promise((r) => (releaseLong = () => r(ok('long done'))));
      if (command === 'bad' && id === 1) throw new ChannelNotOpened('busy');
      return ok(`on ${id}`);
    });
    const a = await pool.lease('h', t.connect);
    const b = await pool.lease('h', t.connect);
    const long = exec(a, 'long');
    assert.equal(t.conns.length, 1, 'both leases on one connection');
    assert.equal((await exec(b, 'bad')).stdout, 'on 2', 'the other lease moved to a fresh connection');
    assert.equal(t.conns[0].closed, false, 'the command still running there keeps it open');
    releaseLong();
    assert.equal((await long).stdout, 'long done');
    a.close();
    b.close();
    assert.equal(t.conns[0].closed, true, 'retired: closed once nothing uses it');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(pool.size(), 0, 'the idle one closed after idleMs');
    assert.ok(t.conns.every((c) => c.closed));
  });
});
