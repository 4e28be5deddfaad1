/**
 * unreachableKind: how a failed PostgreSQL connection is classified (refused, no answer, or
 * unknown because something answered), with a bare TCP connection to tell timeouts apart.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Runtime } from '../../src/activities/runtime';
import { unreachableKind } from '../../src/activities/postgres/connect';

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
