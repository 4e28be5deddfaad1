/**
 * The reads' kept PostgreSQL connections (postgres/pool.ts), with fake clients: reuse, a read
 * that fails or hangs on a pooled connection done again on a fresh one, a connection that closed
 * or grew old not reused, the idle bound, close, and the key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgPool, pgPoolKey } from '../../src/activities/postgres/pool';
import type { PgClientLike } from '../../src/activities/runtime';

interface Fake extends PgClientLike {
  id: number;
  ended: boolean;
  emit(event: 'end' | 'error'): void;
}

function clients() {
  const made: Fake[] = [];
  const fresh = async (): Promise<PgClientLike> => {
    const listeners: Record<string, (() => void)[]> = {};
    const c: Fake = {
      id: made.length + 1,
      ended: false,
      connect: async () => undefined,
      query: async () => ({ rows: [{ id: c.id }] }),
      end: async () => void (c.ended = true),
      on: ((event: string, l: () => void) => void (listeners[event] ??= []).push(l)) as PgClientLike['on'],
      emit: (event) => (listeners[event] ?? []).forEach((l) => l()),
    };
    made.push(c);
    return c;
  };
  return { made, fresh };
}

const opts = { idleMs: 60_000, maxAgeMs: 600_000, maxIdle: 2, attemptMs: 50 };
const idOf = async (c: PgClientLike) => Number((await c.query('SELECT 1')).rows[0].id);

describe('PostgreSQL read pool', () => {
  it('a connection that served a read serves the next; a failed fresh read keeps nothing', async () => {
    const pool = new PgPool(opts);
    const t = clients();
    assert.equal(await pool.run('k', t.fresh, idOf), 1);
    assert.equal(await pool.run('k', t.fresh, idOf), 1, 'reused');
    assert.equal(await pool.run('other', t.fresh, idOf), 2, 'another key, another connection');
    await assert.rejects(
      pool.run('k2', t.fresh, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(t.made[2].ended, true, 'a fresh connection whose read failed is closed');
    assert.equal(pool.size('k2'), 0);
    pool.close();
    assert.ok(
      t.made.every((c) => c.ended),
      'close() ends the idle ones',
    );
  });

  it('a read that fails or hangs on a pooled connection is done again on a fresh one', async () => {
    const pool = new PgPool(opts);
    const t = clients();
    await pool.run('k', t.fresh, idOf);
    let calls = 0;
    const failOnFirst = async (c: PgClientLike) => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      return idOf(c);
    };
    assert.equal(await pool.run('k', t.fresh, failOnFirst), 2, 'the answer comes from a fresh connection');
    assert.equal(t.made[0].ended, true, 'the failed pooled connection is thrown away');
    const hangOnPooled = async (c: PgClientLike) => ((c as Fake).id === 2 ? new Promise<number>(() => undefined) : idOf(c));
    assert.equal(await pool.run('k', t.fresh, hangOnPooled), 3, 'given up after attemptMs');
    assert.equal(t.made[1].ended, true);
    assert.equal(pool.retried, 2);
    pool.close();
  });

  it('one seen to close, or maxAgeMs old, is not reused; at most maxIdle are kept', async () => {
    let now = 0;
    const pool = new PgPool(opts, () => now);
    const t = clients();
    await pool.run('k', t.fresh, idOf);
    t.made[0].emit('end');
    assert.equal(await pool.run('k', t.fresh, idOf), 2, 'closed: a fresh one');
    now += 600_000;
    assert.equal(await pool.run('k', t.fresh, idOf), 3, 'too old: a fresh one');
    assert.equal(t.made[1].ended, true);
    const gate: (() => void)[] = [];
    const slow = (c: PgClientLike) => new Promise<number>((r) => gate.push(() => void idOf(c).then(r)));
    const runs = [pool.run('k', t.fresh, slow), pool.run('k', t.fresh, slow), pool.run('k', t.fresh, slow)];
    await new Promise((r) => setTimeout(r, 10));
    gate.forEach((g) => g());
    await Promise.all(runs);
    assert.equal(pool.size('k'), 2, 'three at once, two kept');
    pool.close();
  });

  it('the key holds everything a connection was opened with, the password only hashed', () => {
    const cfg = { host: 'h', port: 5432, user: 'u', database: 'd', password: 'sekret', statement_timeout: 1 };
    const k = pgPoolKey(cfg);
    assert.ok(!k.includes('sekret'));
    assert.notEqual(pgPoolKey({ ...cfg, password: 'rotated' }), k);
    assert.notEqual(pgPoolKey({ ...cfg, statement_timeout: 2 }), k);
    assert.equal(pgPoolKey({ ...cfg }), k);
  });
});
