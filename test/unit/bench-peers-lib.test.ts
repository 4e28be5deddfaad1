/** bench/peers.ts's own helpers: downtime from ack times, lost writes, percentiles, the table, the ratio lines, the settings taken from the sandbox. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { against, formatTable, lostWrites, pct, ratio, ratioLines, summarize, writeDowntimeMs } from '../../bench/peers/report';
import { confLines, tuningFrom } from '../../bench/peers/procs';
import { stepTimes, withAutomaticFailover } from '../../bench/peers/switchyard';
import { postgresqlConf } from '../../sandbox/postgres';
import type { DbLayout } from '../../sandbox/layout';
import { parse } from 'yaml';

describe('bench/peers helpers', () => {
  it('write downtime is the longest gap between consecutive acknowledged writes, in any order', () => {
    assert.equal(writeDowntimeMs([1000, 1020, 1040, 1900, 1920]), 860);
    assert.equal(writeDowntimeMs([1920, 1000, 1900, 1020]), 880);
    assert.equal(writeDowntimeMs([5, 5]), 0);
    assert.equal(writeDowntimeMs([42]), null);
    assert.equal(writeDowntimeMs([]), null);
  });

  it('lost writes are the acknowledged ids the new primary does not have, each once', () => {
    assert.deepEqual(lostWrites([1, 2, 3, 4, 4], new Set([1, 3])), [2, 4]);
    assert.deepEqual(lostWrites([7, 8], new Set([7, 8, 9])), []);
    assert.deepEqual(lostWrites([], new Set([1])), []);
  });

  it('percentiles by nearest rank; summaries ignore rounds without a figure', () => {
    assert.equal(pct([300, 100, 200], 0.5), 200);
    assert.equal(pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9);
    assert.deepEqual(summarize([400, null, 100, 300, 200]), { n: 4, median: 200, p90: 400, max: 400 });
    assert.equal(summarize([null, null]), null);
  });

  it('the table pads each column to its widest cell, first column left, the rest right', () => {
    const t = formatTable(
      ['tool', 'median'],
      [
        ['switchyard', '120 ms'],
        ['repmgr', '4000 ms'],
      ],
    );
    assert.deepEqual(t.split('\n'), ['tool         median', '----------  -------', 'switchyard   120 ms', 'repmgr      4000 ms']);
  });

  it('ratio lines: one per peer, exactly the wording the issue asks for, n/a without a figure', () => {
    const lines = ratioLines(200, [
      { name: 'repmgr', median: 4000 },
      { name: 'pg_auto_failover', median: 1600 },
      { name: 'patroni', median: null },
    ]);
    assert.deepEqual(lines, [
      'switchover write downtime ratio switchyard/repmgr: 0.05',
      'switchover write downtime ratio switchyard/pg_auto_failover: 0.13',
      'switchover write downtime ratio switchyard/patroni: n/a',
    ]);
    assert.equal(ratio(100, 0), 'n/a');
    assert.equal(ratio(null, 10), 'n/a');
  });

  it('targets: met at the bound, missed above it', () => {
    assert.match(against(250, 250, ' ms'), /^met/);
    assert.match(against(251, 250, ' ms'), /^missed \(251 > 250 ms\)/);
    assert.equal(against(null, 250), 'n/a');
  });

  it("takes the sandbox's tuning and leaves out what names a node", () => {
    const conf = postgresqlConf({
      node: 'n',
      site: 'dc1',
      address: '127.9.9.9',
      slot: 's',
      dataDir: '/d',
      configDir: '/c',
      socketDir: '/r',
      log: '/l',
    } as DbLayout);
    const t = tuningFrom(conf);
    assert.equal(t.shared_buffers, '32MB');
    assert.equal(t.fsync, 'on');
    assert.equal(t.wal_level, 'replica');
    assert.equal(t.wal_log_hints, 'on');
    assert.equal(t.hot_standby_feedback, 'on');
    assert.equal(t.wal_receiver_status_interval, '1s');
    assert.equal(t.max_connections, '60');
    for (const k of ['data_directory', 'listen_addresses', 'port', 'unix_socket_directories', 'hba_file', 'cluster_name']) assert.equal(t[k], undefined, k);
    assert.equal(
      confLines({ max_connections: '60', shared_buffers: '32MB', fsync: 'on', datestyle: 'iso, mdy' }),
      "max_connections = 60\nshared_buffers = '32MB'\nfsync = on\ndatestyle = 'iso, mdy'",
    );
  });

  it('turns on automatic failover in the topology and keeps the rest', () => {
    const text = 'version: 1\nclusters:\n  demo:\n    preferredPrimary: dc1\n    failover:\n      reachTimeoutSeconds: 10\n';
    const doc = parse(withAutomaticFailover(text)) as { clusters: { demo: { preferredPrimary: string; failover: Record<string, unknown> } } };
    assert.deepEqual(doc.clusters.demo.failover, { reachTimeoutSeconds: 10, automatic: true });
    assert.equal(doc.clusters.demo.preferredPrimary, 'dc1');
    assert.throws(() => withAutomaticFailover(text, 'other'), /no cluster other/);
  });

  it("step times: each step's duration and the gap since the previous one ended", () => {
    const at = (s: number) => new Date(1_000_000 + s).toISOString();
    const steps = [
      { name: 'a', state: 'done' as const, startedAt: at(0), endedAt: at(100), attempts: 1, detail: '' },
      { name: 'b', state: 'done' as const, startedAt: at(150), endedAt: at(400), attempts: 1, detail: '' },
      { name: 'c', state: 'done' as const, startedAt: at(400), endedAt: null, attempts: 1, detail: '' },
    ];
    assert.deepEqual(stepTimes(steps), [
      { name: 'a', ms: 100, gapMs: 0 },
      { name: 'b', ms: 250, gapMs: 50 },
      { name: 'c', ms: 0, gapMs: 0 },
    ]);
  });
});
