/**
 * The metric catalog (src/contract/metrics.ts) follows Prometheus conventions, the worker's
 * exporter is set up for it, and the README lists exactly what it has.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { METRICS } from '../../src/contract/metrics';
import { prometheusOptions } from '../../src/worker-metrics';

const BOUNDED_LABELS = new Set(['cluster', 'site', 'operation', 'outcome', 'checkpoint', 'decision', 'kind']);
const all = Object.values(METRICS);

describe('metric catalog', () => {
  it('names are valid, prefixed, carry their unit, and counters are exposed with _total', () => {
    const names = new Set<string>();
    for (const m of all) {
      assert.match(m.name, /^switchyard_[a-z0-9_]+$/, m.name);
      assert.ok(!names.has(m.name), `${m.name} appears once`);
      names.add(m.name);
      if (m.kind === 'counter') {
        assert.ok(!m.name.endsWith('_total'), `${m.name}: the exporter appends _total`);
        assert.equal(m.exposed, `${m.name}_total`);
      } else assert.equal(m.exposed, m.name);
      if (m.kind === 'histogram') {
        assert.match(m.name, /_(seconds|bytes)$/, `${m.name}: a histogram's unit is in its name`);
        assert.ok(m.buckets && m.buckets.length >= 5, `${m.name} has its own buckets`);
        assert.deepEqual(
          [...m.buckets!],
          [...m.buckets!].sort((a, b) => a - b),
          `${m.name}: buckets ascend`,
        );
      }
      if (/timestamp/.test(m.name)) assert.match(m.name, /_timestamp_seconds$/, `${m.name}: Unix time in seconds`);
      for (const l of m.labels) assert.ok(BOUNDED_LABELS.has(l), `${m.name}: label ${l} is from a bounded set`);
      assert.ok(m.help.length > 20, `${m.name} has help text`);
    }
  });

  it("the worker's exporter: no unit suffix added, _total on counters, every histogram's buckets", () => {
    const o = prometheusOptions('127.0.0.1:9464');
    assert.equal(o.bindAddress, '127.0.0.1:9464');
    assert.equal(o.unitSuffix, false);
    assert.equal(o.countersTotalSuffix, true);
    for (const m of all.filter((x) => x.kind === 'histogram')) assert.deepEqual(o.histogramBucketOverrides[m.name], [...m.buckets!], m.name);
  });

  it("the README's metric table lists every metric, and only those", () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const listed = [...readme.matchAll(/^\| `(switchyard_[a-z0-9_]+)` \|/gm)].map((m) => m[1]).sort();
    assert.deepEqual(listed, all.map((m) => m.exposed).sort());
  });
});
