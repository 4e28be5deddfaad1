/** Figures written for people, shared by activities, workflows and the client. */

/** A byte count for people ("512 B", "3.2 MiB", "1.25 GiB", "1.00 PiB"); "unknown" for null. */
export function formatBytes(n: number | null): string {
  if (n === null) return 'unknown';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  if (n < 1024 ** 4) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n < 1024 ** 5) return `${(n / 1024 ** 4).toFixed(2)} TiB`;
  return `${(n / 1024 ** 5).toFixed(2)} PiB`;
}
