/** How long a hook's parts may take. No imports: workflows use it too (and must not pull in the schema). */

/** How long a hook's check command may take: its own timeout, at most a minute (a check reads, it does not work). */
export function hookCheckTimeoutSeconds(timeoutSeconds: number): number {
  return Math.min(timeoutSeconds, 60);
}
