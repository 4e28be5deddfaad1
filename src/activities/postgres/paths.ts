/**
 * Where a node's PostgreSQL programs and configuration live on its host.
 */
import { posix } from 'node:path';
import type { DbNodeConfig } from '../../topology/schema';

/** A PostgreSQL program of the node's installation (its binDir). */
export const pgTool = (n: DbNodeConfig, tool: string): string => posix.join(n.binDir, tool);

/** The directory pg_ctl is given with -D: where postgresql.conf is (configDir), else the data directory. */
export const pgCtlDir = (n: DbNodeConfig): string => n.configDir ?? n.dataDir;
