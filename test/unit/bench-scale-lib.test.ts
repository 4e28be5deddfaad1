/** bench/scale.ts's own helpers: the generated topology, percentiles, event times and /proc samples. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseTopology } from '../../src/topology/load';
import { ms, pct, probeCadence, procSample, scaledTopology, type CadenceEvent } from '../../bench/scale-lib';

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

  it("a watch's cadence from its history: gaps between probe starts, run times, timer → probe", () => {
    const t = (s: number) => ({ seconds: s, nanos: 0 });
    let id = 0;
    const ev = (at: number, e: Partial<CadenceEvent>): CadenceEvent => ({ eventId: ++id, eventTime: t(at), ...e });
    const probe = (at: number, runs: number, fired?: number): CadenceEvent[] => {
      const out: CadenceEvent[] = [];
      if (fired !== undefined) out.push(ev(fired, { timerFiredEventAttributes: {} }));
      const s = ev(at, { activityTaskScheduledEventAttributes: { activityType: { name: 'watchObserve' } } });
      out.push(s, ev(at, { activityTaskStartedEventAttributes: { scheduledEventId: s.eventId } }));
      out.push(ev(at + runs, { activityTaskCompletedEventAttributes: { scheduledEventId: s.eventId } }));
      return out;
    };
    const layout = ev(0, { activityTaskScheduledEventAttributes: { activityType: { name: 'clusterLayout' } } });
    const events = [layout, ...probe(1, 1), ...probe(17, 2, 16), ...probe(27, 1, 26), ...probe(40, 1, 37)];
    const c = probeCadence(events, 'watchObserve');
    assert.equal(c.probes, 4, 'only the watchObserve activities count');
    assert.deepEqual(c.gapsMs, [10_000, 13_000], 'the first gap (the spread) left out');
    assert.deepEqual(probeCadence(events, 'watchObserve', 0).gapsMs, [16_000, 10_000, 13_000]);
    assert.deepEqual(c.runMs, [1000, 2000, 1000, 1000]);
    assert.deepEqual(c.timerToProbeMs, [1000, 1000, 3000]);
  });

  it('this process has a peak RSS and CPU time; a gone process keeps the last sample', () => {
    const me = procSample(process.pid);
    assert.ok(me.peakRssKiB > 10_000, `${me.peakRssKiB} KiB`);
    assert.ok(me.cpuSeconds > 0);
    assert.deepEqual(procSample(2 ** 22 + 12345, me), me);
  });
});
