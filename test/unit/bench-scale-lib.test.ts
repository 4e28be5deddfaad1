/** bench/scale.ts's own helpers: the generated topology, percentiles, event times and /proc samples. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseTopology } from '../../src/topology/load';
import { ms, pct, procSample, scaledTopology } from '../../bench/scale-lib';

describe('bench/scale helpers', () => {
  it('clones the one cluster N times into a valid topology, every clone on the same nodes', () => {
    const example = readFileSync(join(__dirname, '../../examples/switchyard.yaml'), 'utf8');
    const top = parseTopology(scaledTopology(example, 3), 'scaled.yaml');
    assert.deepEqual(Object.keys(top.clusters), ['c000', 'c001', 'c002']);
    assert.deepEqual(top.clusters.c002.postgres.nodes, top.clusters.c000.postgres.nodes);
  });

  it('percentiles by nearest rank, ignoring what is not finite', () => {
    assert.equal(pct([5, 1, 4, 2, 3], 0.5), 3);
    assert.equal(pct([1, 2, 3, 4, 100], 0.99), 100);
    assert.equal(pct([1.26, Infinity], 0.5, 1), 1.3);
    assert.ok(Number.isNaN(pct([], 0.5)));
  });

  it('event times from protobuf timestamps and dates', () => {
    assert.equal(ms({ seconds: 2, nanos: 5_000_000 }), 2005);
    assert.equal(ms({ seconds: { toNumber: () => 3 }, nanos: 0 }), 3000);
    assert.equal(ms(new Date(42)), 42);
    assert.ok(Number.isNaN(ms(null)));
  });

  it('this process has a peak RSS and CPU time; a gone process keeps the last sample', () => {
    const me = procSample(process.pid);
    assert.ok(me.peakRssKiB > 10_000, `${me.peakRssKiB} KiB`);
    assert.ok(me.cpuSeconds > 0);
    assert.deepEqual(procSample(2 ** 22 + 12345, me), me);
  });
});
