import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PgNodeStatus } from '../../src/contract/observations';
import { clusterLayout } from '../../src/topology/layout';
import { loadTopology } from '../../src/topology/load';
import { assessReadiness } from '../../src/workflows/lib/readiness-assess';
import { type Observations } from '../../src/contract/readiness';
import { formatBytes } from '../../src/contract/format';

const layout = clusterLayout('shop', loadTopology(join(__dirname, '../../examples/switchyard.yaml')).clusters.shop);
const base = { cluster: 'shop', reachable: true, timeline: 1 };

function observations(): Observations {
  const primary: PgNodeStatus = {
    ...base,
    node: 'eu1-db',
    site: 'eu1',
    inRecovery: false,
    currentLsn: '0/5000000',
    slots: [{ name: 'eu2_db', active: true, restartLsn: '0/5000000' }],
  };
  const standby: PgNodeStatus = {
    ...base,
    node: 'eu2-db',
    site: 'eu2',
    inRecovery: true,
    walReceiver: { status: 'streaming', senderHost: '10.1.0.10', senderPort: 5432, slotName: 'eu2_db' },
  };
  return {
    layout,
    nodes: [primary, standby],
    probe: { node: 'eu1-db', ok: true, lsn: '0/5000100', detail: 'ok' },
    lags: [{ primary: 'eu1-db', standby: 'eu2-db', primaryLsn: '0/5000100', receiveLsn: '0/5000100', replayLsn: '0/5000100', lagBytes: 0, lagSeconds: 0 }],
    ssh: [],
    services: [
      { site: 'eu1', service: 'fault-detection', host: 'eu1-app', running: true, detail: '' },
      { site: 'eu2', service: 'fault-detection', host: 'eu2-app', running: false, detail: '' },
    ],
    maintenance: [
      { site: 'eu1', on: false, httpStatus: 200, detail: '' },
      { site: 'eu2', on: true, httpStatus: 503, detail: '' },
    ],
    traffic: [{ driver: 'public', kind: 'elastic-ip', site: 'eu1', target: 'i-1', detail: '' }],
    ec2: null,
  };
}

const failed = (o: Observations) =>
  assessReadiness(o, '2026-01-01T00:00:00.000Z')
    .checks.filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail}`);

describe('assessReadiness', () => {
  it("all healthy: ready, and the primary LSN is the write probe's", () => {
    const r = assessReadiness(observations(), '2026-01-01T00:00:00.000Z');
    assert.deepEqual(failed(observations()), []);
    assert.equal(r.ready, true);
    assert.equal(r.primaryLsn, '0/5000100');
  });

  it('services running on the standby site are a fault (Circonus stops them there)', () => {
    const o = observations();
    o.services[1].running = true;
    assert.deepEqual(failed(o), ["service:eu2/fault-detection: running on standby site eu2; only the primary site's services should run"]);
  });

  it('maintenance left on at the primary site is a fault; on at the standby site is not', () => {
    const o = observations();
    o.maintenance[0] = { site: 'eu1', on: true, httpStatus: 503, detail: '' };
    assert.deepEqual(failed(o), ['maintenance:eu1: maintenance on, app HTTP 503']);
  });

  it('an inactive or missing slot is a fault', () => {
    const o = observations();
    o.nodes[0].slots = [{ name: 'eu2_db', active: false, restartLsn: null }];
    assert.deepEqual(failed(o), ['slot:eu2-db: slot eu2_db on eu1-db is inactive']);
    o.nodes[0].slots = [];
    assert.deepEqual(failed(o), ['slot:eu2-db: slot eu2_db does not exist on eu1-db']);
  });

  it('a standby streaming from somewhere other than the primary is a fault', () => {
    const o = observations();
    o.nodes[1].walReceiver = { status: 'streaming', senderHost: '10.9.9.9', senderPort: 5432, slotName: null };
    assert.deepEqual(failed(o), ['standby:eu2-db: eu2-db (eu2) streams from 10.9.9.9:5432, which is not the primary (10.1.0.10:5432)']);
  });

  it('a standby in recovery without a WAL receiver is a fault', () => {
    const o = observations();
    o.nodes[1].walReceiver = null;
    assert.deepEqual(failed(o), ['standby:eu2-db: eu2-db (eu2) is in recovery but not streaming (WAL receiver: not running)']);
  });

  it('no primary at all', () => {
    const o = observations();
    o.nodes[0] = { cluster: 'shop', node: 'eu1-db', site: 'eu1', reachable: false, error: 'timeout' };
    o.probe = null;
    const r = assessReadiness(o, 'x');
    assert.equal(r.ready, false);
    assert.equal(r.primarySite, null);
    assert.equal(r.checks.find((c) => c.name === 'primary')?.detail, 'no node is primary: eu1-db unreachable (timeout); eu2-db in recovery');
    // the standby named is the one that answers in recovery, not the dead former primary
    assert.deepEqual([r.standbyNode, r.standbySite], ['eu2-db', 'eu2']);
  });

  it('formats bytes for people', () => {
    assert.equal(formatBytes(null), 'unknown');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(16 * 1024 * 1024), '16.0 MiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.50 GiB');
    assert.equal(formatBytes(3 * 1024 ** 4), '3.00 TiB');
    assert.equal(formatBytes(2 ** 60), '1024.00 PiB');
  });
});
