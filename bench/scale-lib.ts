/**
 * The small measuring helpers of bench/scale.ts, apart so the tests can check them: a process's
 * peak RSS and CPU seconds from /proc, percentiles, and event times in milliseconds.
 */
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';

export interface ProcSample {
  /** The largest resident set seen (VmHWM, KiB): the kernel's own high-water mark. */
  peakRssKiB: number;
  /** user + system CPU seconds so far. */
  cpuSeconds: number;
}

const CLOCK_TICKS = 100;

/** /proc/<pid>/status VmHWM and /proc/<pid>/stat utime+stime; keeps the previous sample when the process is gone. */
export function procSample(pid: number, previous?: ProcSample | null): ProcSample {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
    return { peakRssKiB: Math.max(hwm, previous?.peakRssKiB ?? 0), cpuSeconds: Math.max(cpu, previous?.cpuSeconds ?? 0) };
  } catch {
    return previous ?? { peakRssKiB: 0, cpuSeconds: 0 };
  }
}

/** The p-th percentile (nearest rank), rounded to `digits`; NaN for none. */
export function pct(xs: readonly number[], p: number, digits = 0): number {
  const finite = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!finite.length) return NaN;
  const v = finite[Math.min(finite.length - 1, Math.max(0, Math.ceil(p * finite.length) - 1))];
  return Number(v.toFixed(digits));
}

/** A history event's time (a protobuf Timestamp or a Date) in milliseconds since the epoch. */
export function ms(t: unknown): number {
  if (t instanceof Date) return t.getTime();
  const ts = t as { seconds?: number | string | { toNumber(): number }; nanos?: number } | null | undefined;
  if (!ts) return NaN;
  const s = typeof ts.seconds === 'object' && ts.seconds !== null ? ts.seconds.toNumber() : Number(ts.seconds ?? 0);
  return s * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

/** The sandbox's topology with its one cluster cloned N times (same nodes, hosts, drivers). */
export function scaledTopology(text: string, n: number): string {
  const doc = parse(text) as { clusters: Record<string, unknown> };
  const [[, demo]] = Object.entries(doc.clusters);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`c${String(i).padStart(3, '0')}`] = structuredClone(demo);
  doc.clusters = out;
  return stringify(doc, { lineWidth: 0 });
}

/** The parts of a history event the cadence reads (a temporal.api.history.v1.HistoryEvent). */
export interface CadenceEvent {
  eventId?: unknown;
  eventTime?: unknown;
  timerFiredEventAttributes?: unknown;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null;
  activityTaskStartedEventAttributes?: { scheduledEventId?: unknown } | null;
  activityTaskCompletedEventAttributes?: { scheduledEventId?: unknown } | null;
}

/**
 * How one watch kept its interval, from its history: the gaps between the starts (scheduled
 * times) of consecutive `activity` probes, each probe's run time (started → completed), and how
 * long a probe's timer took to turn into the next probe (the workflow task in between).
 * `skipFirstGaps` leaves out the first gaps (the one-time spread after a watch's first probe).
 */
export function probeCadence(
  events: readonly CadenceEvent[],
  activity: string,
  skipFirstGaps = 1,
): { probes: number; gapsMs: number[]; runMs: number[]; timerToProbeMs: number[] } {
  const scheduled = new Map<string, number>();
  const started = new Map<string, number>();
  const starts: number[] = [];
  const runMs: number[] = [];
  const timerToProbeMs: number[] = [];
  let firedAt: number | null = null;
  for (const e of events) {
    const at = ms(e.eventTime);
    if (e.timerFiredEventAttributes) firedAt = at;
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      if (s.activityType?.name !== activity) continue;
      scheduled.set(String(e.eventId), at);
      starts.push(at);
      if (firedAt !== null) timerToProbeMs.push(at - firedAt);
      firedAt = null;
    } else if (e.activityTaskStartedEventAttributes) {
      const id = String(e.activityTaskStartedEventAttributes.scheduledEventId);
      if (scheduled.has(id)) started.set(id, at);
    } else if (e.activityTaskCompletedEventAttributes) {
      const t0 = started.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
      if (t0 !== undefined) runMs.push(at - t0);
    }
  }
  const gapsMs = starts.slice(1).map((t, i) => t - starts[i]);
  return { probes: starts.length, gapsMs: gapsMs.slice(skipFirstGaps), runMs, timerToProbeMs };
}
