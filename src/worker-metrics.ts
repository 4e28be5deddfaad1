/**
 * The worker's Prometheus endpoint: the SDK's exporter set up for switchyard's catalog
 * (src/contract/metrics.ts: its bucket bounds, units already in the names, `_total` on counters),
 * and the gauges the worker itself publishes from the topology: the bounds the alert rules compare
 * the recorded values with (backup.maxRestorableAge, postgres.maxLagBytes).
 */
import type { MetricMeter } from '@temporalio/common';
import { METRICS } from './contract/metrics';
import { durationSeconds } from './topology/duration';
import type { Topology } from './topology/schema';

/** Options for the SDK's Prometheus exporter listening on host:port. */
export function prometheusOptions(bindAddress: string) {
  const histogramBucketOverrides: Record<string, number[]> = {};
  for (const m of Object.values(METRICS)) if (m.kind === 'histogram' && m.buckets) histogramBucketOverrides[m.name] = [...m.buckets];
  return {
    bindAddress,
    // Our names carry their unit (…_seconds, …_bytes); the SDK's own durations become seconds too.
    countersTotalSuffix: true,
    unitSuffix: false,
    useSecondsForDurations: true,
    histogramBucketOverrides,
  };
}

/** The topology's bounds as gauges, one per cluster; publish again after a reload. */
export function topologyGauges(meter: MetricMeter): { publish(t: Topology): void } {
  const maxAge = meter.createGauge(METRICS.backupMaxRestorableAge.name, 'float', undefined, METRICS.backupMaxRestorableAge.help);
  const maxLag = meter.createGauge(METRICS.replicationMaxLagBytes.name, 'int', undefined, METRICS.replicationMaxLagBytes.help);
  return {
    publish(t: Topology) {
      for (const [cluster, c] of Object.entries(t.clusters)) {
        maxLag.set(c.postgres.maxLagBytes, { cluster });
        const age = c.backup?.maxRestorableAge;
        if (age) maxAge.set(durationSeconds(age), { cluster });
      }
    },
  };
}
