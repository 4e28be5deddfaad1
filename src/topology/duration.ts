/** Durations as the topology and the CLI write them: "90s", "15m", "6h", "14d". No imports: workflows use it too. */
export const DURATION_RE = /^(\d+)(s|m|h|d)$/;

/** "90s", "15m", "6h", "14d" → seconds */
export function durationSeconds(d: string): number {
  const m = DURATION_RE.exec(d);
  if (!m) throw new Error(`not a duration: ${JSON.stringify(d)}`);
  const n = Number(m[1]);
  return n * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}
