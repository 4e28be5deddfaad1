import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PgNodeStatus, VantageView } from '../../src/contract/observations';
import type { WatchObservations } from '../../src/contract/readiness';
import { clusterLayout } from '../../src/topology/layout';
import { loadTopology } from '../../src/topology/load';
import { automaticAllowed, judge, updateIncidents } from '../../src/workflows/lib/watch-assess';

const layout = clusterLayout('shop', loadTopology(join(__dirname, '../../examples/switchyard.yaml')).clusters.shop);
const AT = '2026-01-01T00:00:00.000Z';

const primary: PgNodeStatus = {
  cluster: 'shop',
  node: 'eu1-db',
  site: 'eu1',
  reachable: true,
  inRecovery: false,
  currentLsn: '0/5000000',
  timeline: 1,
  slots: [{ name: 'eu2_db', active: true, restartLsn: '0/5000000' }],
};
const standby: PgNodeStatus = {
  cluster: 'shop',
  node: 'eu2-db',
  site: 'eu2',
  reachable: true,
  inRecovery: true,
  timeline: 1,
  walReceiver: { status: 'streaming', senderHost: '10.1.0.10', senderPort: 5432, slotName: 'eu2_db' },
};
const gone: PgNodeStatus = {
  cluster: 'shop',
  node: 'eu1-db',
  site: 'eu1',
  reachable: false,
  unreachable: 'no-answer',
  error: 'connect ETIMEDOUT 10.1.0.10:5432',
};
const view = (verdict: VantageView['verdict']): VantageView => ({
  node: 'eu1-db',
  from: 'eu2-app',
  site: 'eu2',
  verdict,
  detail: `10.1.0.10:5432 ${verdict}, seen from eu2-app (eu2)`,
});

function obs(over: Partial<WatchObservations> = {}): WatchObservations {
  return {
    nodes: [primary, standby],
    probe: { node: 'eu1-db', ok: true, lsn: '0/5000100', detail: 'ok' },
    lags: [{ primary: 'eu1-db', standby: 'eu2-db', primaryLsn: '0/5000100', receiveLsn: '0/5000100', replayLsn: '0/5000100', lagBytes: 0, lagSeconds: 0 }],
    ssh: [],
    traffic: [{ driver: 'public', kind: 'elastic-ip', site: 'eu1', target: 'i-1', detail: '' }],
    fences: [],
    backups: null,
    vantage: [],
    ...over,
  };
}

describe('watch: judging one probe', () => {
  it('a healthy cluster: ok, no warning', () => {
    const j = judge(layout, obs(), 'eu1-db', AT);
    assert.equal(j.verdict, 'ok');
    assert.deepEqual(j.primaries, ['eu1-db']);
    assert.deepEqual(j.warnings, []);
  });

  it('no primary answers the worker and the other site agrees: a confirmed failure', () => {
    const j = judge(layout, obs({ nodes: [gone, standby], probe: null, lags: [], vantage: [view('no-answer')] }), 'eu1-db', AT);
    assert.equal(j.verdict, 'primary-failing');
    assert.equal(j.failing, true);
    assert.equal(j.confirmed, true);
    assert.match(j.why, /confirmed from the other site\(s\): 10\.1\.0\.10:5432 no-answer, seen from eu2-app/);
    // The standby's, slot's and traffic's checks are judged against a primary: not warned about now.
    assert.deepEqual(j.warnings, []);
  });

  it('the other site still reaches it: a partition, not confirmed, warned', () => {
    const j = judge(layout, obs({ nodes: [gone, standby], probe: null, lags: [], vantage: [view('accepting')] }), 'eu1-db', AT);
    assert.equal(j.verdict, 'partition');
    assert.equal(j.confirmed, false);
    assert.deepEqual(
      j.warnings.map((w) => w.key),
      ['partition:eu1-db'],
    );
  });

  it('the other site cannot be asked, or gave no view: unknown, never confirmed (fails closed)', () => {
    for (const vantage of [[view('unknown')], []]) {
      const j = judge(layout, obs({ nodes: [gone, standby], probe: null, lags: [], vantage }), 'eu1-db', AT);
      assert.equal(j.verdict, 'unconfirmed');
      assert.equal(j.confirmed, false);
      assert.deepEqual(
        j.warnings.map((w) => w.key),
        ['vantage:eu2-app'],
      );
      assert.match(j.why, /no failover is staged until it can \(start one by hand: switchyard failover shop\)/);
    }
  });

  it('without vantage hosts the worker alone judges, and says so', () => {
    const bare = { ...layout, vantages: [] };
    const j = judge(bare, obs({ nodes: [gone, standby], probe: null, lags: [] }), 'eu1-db', AT);
    assert.equal(j.confirmed, true);
    assert.match(j.why, /no other site has a vantage host to confirm it/);
  });

  it('two primaries: split brain, never failing', () => {
    const two = { ...standby, inRecovery: false, walReceiver: null };
    const j = judge(layout, obs({ nodes: [primary, two] }), 'eu1-db', AT);
    assert.equal(j.verdict, 'split-brain');
    assert.equal(j.failing, false);
    assert.ok(j.warnings.some((w) => w.key === 'split-brain'));
  });

  it('a fenced former primary that answers again is a warning; one the watch saw replaced is listed even when its fence cannot be read', () => {
    const promoted = { ...standby, inRecovery: false, walReceiver: null, slots: [] };
    const back = { ...primary, inRecovery: true, slots: [] };
    const marker = { fencedBy: 'failover-1', at: AT, newPrimary: 'eu2-db', reason: 'x' };
    const j = judge(
      layout,
      obs({
        nodes: [back, promoted],
        probe: null,
        lags: [],
        traffic: [],
        fences: [{ node: 'eu1-db', readable: true, marker, standbySignal: true, detail: '' }],
      }),
      'eu2-db',
      AT,
    );
    assert.deepEqual(
      j.formerPrimaries.map((f) => [f.node, f.fence, f.fencedBy, f.answers]),
      [['eu1-db', 'marked', 'failover-1', true]],
    );
    assert.ok(j.warnings.some((w) => w.key === 'returned:eu1-db' && /answers again \(read-only, in recovery\)/.test(w.detail)));
    const k = judge(
      layout,
      obs({
        nodes: [gone, promoted],
        probe: null,
        lags: [],
        traffic: [],
        fences: [{ node: 'eu1-db', readable: false, marker: null, standbySignal: null, detail: 'down' }],
      }),
      'eu2-db',
      AT,
      { node: 'eu1-db', newPrimary: 'eu2-db', since: AT },
    );
    assert.deepEqual(
      k.formerPrimaries.map((f) => [f.node, f.fence, f.answers, f.rejoin]),
      [['eu1-db', 'unreadable', false, 'switchyard rejoin shop --node eu1-db']],
    );
  });
});

describe('watch: incidents', () => {
  it('open at the second probe in a row (notified once), end when no longer seen; a one-probe blip ends silently', () => {
    const w = [{ key: 'ssh:eu2-app', detail: 'down' }];
    const a = updateIncidents([], w, 't1');
    assert.deepEqual(a.opened, []);
    const b = updateIncidents(a.incidents, w, 't2');
    assert.deepEqual(
      b.opened.map((i) => [i.key, i.since]),
      [['ssh:eu2-app', 't1']],
    );
    const c = updateIncidents(b.incidents, w, 't3');
    assert.deepEqual(c.opened, [], 'notified once');
    const d = updateIncidents(c.incidents, [], 't4');
    assert.deepEqual(
      d.ended.map((e) => [e.incident.key, e.incident.since, e.at]),
      [['ssh:eu2-app', 't1', 't4']],
    );
    assert.deepEqual(d.incidents, []);
    const blip = updateIncidents(updateIncidents([], w, 't1').incidents, [], 't2');
    assert.deepEqual(blip.ended, []);
  });
});

describe('watch: anti-flapping', () => {
  const last = { workflowId: 'failover-1', at: AT };
  const t0 = Date.parse(AT);
  it('off unless the cluster allows it', () =>
    assert.equal(automaticAllowed('shop', false, 3600, { last: null, ackedBy: null, ackedAt: null }, t0).allowed, false));
  it('the first one is allowed', () => assert.equal(automaticAllowed('shop', true, 3600, { last: null, ackedBy: null, ackedAt: null }, t0).allowed, true));
  it('after one: refused until acknowledged or the cool-down passed, with the command that acknowledges', () => {
    const r = automaticAllowed('shop', true, 3600, { last, ackedBy: null, ackedAt: null }, t0 + 60_000);
    assert.equal(r.allowed, false);
    assert.match(
      r.why,
      /failover-1 at 2026-01-01T00:00:00.000Z is not acknowledged and its cool-down ends at 2026-01-01T01:00:00.000Z \(acknowledge it with `switchyard watch ack shop`\)/,
    );
    assert.equal(automaticAllowed('shop', true, 3600, { last, ackedBy: 'carol', ackedAt: AT }, t0 + 60_000).allowed, true);
    assert.equal(automaticAllowed('shop', true, 3600, { last, ackedBy: null, ackedAt: null }, t0 + 3600_000).allowed, true);
  });
});
