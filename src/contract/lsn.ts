/** WAL positions (LSNs such as "16/B374D848"), for workflows and activities alike. */

/** An LSN as PostgreSQL prints it. */
export const LSN_RE = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

/** "16/B374D848" → bytes since 0/0; null for anything that is not an LSN. */
export function lsnValue(lsn: string | null | undefined): bigint | null {
  if (!lsn) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) return null;
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

/** "16/B374D848" → bytes since 0/0; throws for anything that is not an LSN. */
export function lsnToBigInt(lsn: string): bigint {
  const v = lsnValue(lsn);
  if (v === null) throw new Error(`not an LSN: ${JSON.stringify(lsn)}`);
  return v;
}

/** a - b in bytes (negative when b is ahead); throws for anything that is not an LSN. */
export function lsnDiff(a: string, b: string): number {
  return Number(lsnToBigInt(a) - lsnToBigInt(b));
}

/** a - b in bytes; null when either is unknown. */
export function lsnMinus(a: string | null | undefined, b: string | null | undefined): number | null {
  const x = lsnValue(a);
  const y = lsnValue(b);
  return x === null || y === null ? null : Number(x - y);
}

/** The furthest of the given positions (unknowns ignored); null when none is known. */
export function lsnMax(...lsns: (string | null | undefined)[]): string | null {
  let best: string | null = null;
  for (const l of lsns) {
    const v = lsnValue(l);
    if (v !== null && (best === null || v > (lsnValue(best) as bigint))) best = l as string;
  }
  return best;
}
