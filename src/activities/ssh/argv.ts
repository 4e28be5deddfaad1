/**
 * Argument lists for commands run on a host over SSH. A script is fixed text and every path or
 * value is a positional argument ($1, $2 …), never spliced into it; quote.ts quotes each argument.
 */
export const shellScript = (script: string, ...args: string[]): string[] => ['sh', '-c', script, 'sh', ...args];

/** A command run in the C locale, so its output reads the same on every host. */
export const inCLocale = (argv: readonly string[]): string[] => ['env', 'LC_ALL=C', ...argv];
