/**
 * The failover's data-loss judgement: which position of the old primary counts, and how sure it
 * is; and the gate on it, where a lower bound counts only while its reading is fresh.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PgControlData, PgNodeStatus } from '../../src/contract/observations';
import { judgeLoss, lossGate, type DataLoss } from '../../src/workflows/lib/data-loss';

const standby = (receiveLsn: string | null, replayLsn: string | null = receiveLsn): PgNodeStatus => ({
  cluster: 'demo',
  node: 'dc2-db',
  site: 'dc2',
  reachable: true,
  inRecovery: true,
  receiveLsn,
  replayLsn,
});
const down: PgNodeStatus = { cluster: 'demo', node: 'dc1-db', site: 'dc1', reachable: false, error: 'connect ECONNREFUSED' };
const control = (state: string, checkpointLsn: string): PgControlData =>
  ({
    node: 'dc1-db',
    ok: true,
    state,
    checkpointLsn,
    redoLsn: checkpointLsn,
    timeline: 1,
    minRecoveryEndLsn: null,
    systemIdentifier: '1',
    detail: '',
  }) as PgControlData;

describe('judgeLoss', () => {
  it('a clean shutdown checkpoint the standby received is zero bytes, exact', () => {
    const l = judgeLoss({ oldNode: 'dc1-db', control: control('shut down', '0/3000028'), oldAtStart: down, last: null, standby: standby('0/30000A0') });
    assert.deepEqual([l.bytes, l.exact, l.source], [0, true, 'shutdown-checkpoint']);
  });

  it('counts what the standby did not receive, in bytes', () => {
    const l = judgeLoss({ oldNode: 'dc1-db', control: control('shut down', '0/3100000'), oldAtStart: down, last: null, standby: standby('0/3000000') });
    assert.equal(l.bytes, 0x100000);
    assert.match(l.detail, /1048576 bytes behind/);
  });

  it('WAL received but not replayed is not lost: promotion replays it', () => {
    const l = judgeLoss({
      oldNode: 'dc1-db',
      control: control('shut down', '0/3000028'),
      oldAtStart: down,
      last: null,
      standby: standby('0/30000A0', '0/2000000'),
    });
    assert.equal(l.bytes, 0);
    assert.match(l.detail, /received but not yet replayed/);
  });

  it('a crashed primary: the higher of its control file and the last readiness reading, as a lower bound', () => {
    const last = { found: true, lsn: '0/5000000', node: 'dc1-db', observedAt: '2026-11-22T07:00:00Z', workflowId: 'readiness-1' };
    const l = judgeLoss({ oldNode: 'dc1-db', control: control('in production', '0/4000000'), oldAtStart: down, last, standby: standby('0/4800000') });
    assert.deepEqual([l.bytes, l.exact, l.source], [0x800000, false, 'readiness']);
    assert.match(l.detail, /at least/);
  });

  it('a reading of another node as primary does not count for this one', () => {
    const last = { found: true, lsn: '0/9000000', node: 'dc2-db', observedAt: '2026-11-22T07:00:00Z', workflowId: 'readiness-2' };
    const l = judgeLoss({ oldNode: 'dc1-db', control: null, oldAtStart: down, last, standby: standby('0/4800000') });
    assert.deepEqual([l.bytes, l.source], [null, 'unknown']);
    assert.match(l.detail, /data loss unknown/);
  });

  it('a live reading from the start of the run is used when the old primary was reachable', () => {
    const live: PgNodeStatus = { ...down, reachable: true, inRecovery: false, currentLsn: '0/6000000', error: undefined };
    const l = judgeLoss({ oldNode: 'dc1-db', control: null, oldAtStart: live, last: null, standby: standby('0/5F00000') });
    assert.deepEqual([l.bytes, l.exact, l.source], [0x100000, false, 'live-reading']);
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
