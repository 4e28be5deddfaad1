/**
 * Argument lists for commands run on a host over SSH. A script is fixed text and every path or
 * value is a positional argument ($1, $2 …), never spliced into it; remote.ts quotes each argument.
 */
import { posix } from 'node:path';
import type { DbNodeConfig } from '../topology/schema';

/** `sh -c <script> sh <args…>`: the script sees the values as "$1", "$2" … */
export const shellScript = (script: string, ...args: string[]): string[] => ['sh', '-c', script, 'sh', ...args];

/** A command run in the C locale, so its output reads the same on every host. */
export const inCLocale = (argv: readonly string[]): string[] => ['env', 'LC_ALL=C', ...argv];

/** A PostgreSQL program of the node's installation (its binDir). */
export const pgTool = (n: DbNodeConfig, tool: string): string => posix.join(n.binDir, tool);

/** The directory pg_ctl is given with -D: where postgresql.conf is (configDir), else the data directory. */
export const pgCtlDir = (n: DbNodeConfig): string => n.configDir ?? n.dataDir;
