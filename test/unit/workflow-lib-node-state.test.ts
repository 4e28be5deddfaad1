/**
 * nodeState: how a status read is judged, failing closed: only a refused connection is "down",
 * and streaming counts only from the expected primary.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PgNodeStatus } from '../../src/contract/observations';
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
