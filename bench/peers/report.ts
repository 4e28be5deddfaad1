/**
 * The pure part of bench/peers.ts, apart so test/unit/bench-peers-lib.test.ts can check it: write
 * downtime from ack times, lost writes, the per-tool summaries, the table and the ratio lines.
 */
import { pct } from '../scale-lib';

export { pct };

/** Write downtime of a run: the longest gap between consecutive acknowledged writes (ms); null with fewer than two. */
export function writeDowntimeMs(ackTimes: readonly number[]): number | null {
  if (ackTimes.length < 2) return null;
  const s = [...ackTimes].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < s.length; i++) gap = Math.max(gap, s[i] - s[i - 1]);
  return gap;
}

/** The acknowledged ids the new primary does not have, in order. */
export function lostWrites(acked: readonly number[], present: ReadonlySet<number>): number[] {
  return [...new Set(acked)].filter((id) => !present.has(id)).sort((a, b) => a - b);
}

export interface Summary {
  n: number;
  median: number;
  p90: number;
  max: number;
}

/** Median, p90 (nearest rank) and max of the finite values; null for none. */
export function summarize(xs: readonly (number | null)[]): Summary | null {
  const ok = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (!ok.length) return null;
  return { n: ok.length, median: pct(ok, 0.5), p90: pct(ok, 0.9), max: Math.max(...ok) };
}

/** Columns padded to their widest cell; the first column left-aligned, the rest right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i])))
      .join('  ')
      .trimEnd();
  return [line(header), line(w.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n');
}

export const ms = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${Math.round(x)} ms`);

/** switchyard's median over a peer's, two decimals; "n/a" when either is missing or the peer's is 0. */
export function ratio(ours: number | null | undefined, theirs: number | null | undefined): string {
  if (ours === null || ours === undefined || theirs === null || theirs === undefined || !Number.isFinite(ours) || !Number.isFinite(theirs) || theirs === 0)
    return 'n/a';
  return (ours / theirs).toFixed(2);
}

/** The last lines of the output: one per peer, exactly this wording. */
export function ratioLines(switchyardMedian: number | null, peers: readonly { name: string; median: number | null }[]): string[] {
  return peers.map((p) => `switchover write downtime ratio switchyard/${p.name}: ${ratio(switchyardMedian, p.median)}`);
}

/** "met" / "missed (x > bound)" / "n/a" for one figure against an upper bound. */
export function against(x: number | null | undefined, bound: number | null | undefined, what = ''): string {
  if (x === null || x === undefined || bound === null || bound === undefined || !Number.isFinite(x) || !Number.isFinite(bound)) return 'n/a';
  return x <= bound ? `met (${Math.round(x)} ≤ ${Math.round(bound)}${what})` : `missed (${Math.round(x)} > ${Math.round(bound)}${what})`;
}

/** Acks between two times (inclusive), for a round's window. */
export function within<T extends { at: number }>(acks: readonly T[], from: number, to: number): T[] {
  return acks.filter((a) => a.at >= from && a.at <= to);
}
