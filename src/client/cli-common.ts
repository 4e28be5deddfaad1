/** What every `switchyard` command shares: the global flags and the usage error (exit 2). */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { loadTopology, resolveConfigPath } from '../topology/load';
import type { ClusterConfig } from '../topology/schema';
import type { TemporalTarget } from '../temporal-target';
import { resolveTemporal, type AccessFlags } from '../temporal-access';

export class UsageError extends Error {}

export interface GlobalOpts extends AccessFlags {
  config?: string;
}

/**
 * The Temporal frontend, namespace, TLS, API key and payload codec a command talks with: the
 * flags, then the temporal CLI's environment variables, then the topology's `temporal:` section
 * (the same file the command reads; none when there is no topology file).
 */
export async function target(cmd: Command): Promise<TemporalTarget> {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const configPath = await findConfig(g.config, () => undefined);
  const temporal = existsSync(configPath) ? loadTopology(configPath).temporal : undefined;
  try {
    return await resolveTemporal(g, temporal, process.env);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}${temporal ? ` (topology ${configPath}, section temporal)` : ''}`);
  }
}

/** The sandbox module (pg, AWS SDK) loads only for the commands that use it. */
export function loadSandbox(): typeof import('../../sandbox') {
  return require('../../sandbox') as typeof import('../../sandbox');
}

/** The topology path for a command, by the one rule every command follows. */
export async function findConfig(flag: string | undefined, note: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<string> {
  const path = resolveConfigPath(flag);
  if (flag || process.env.SWITCHYARD_CONFIG || existsSync(path)) return path;
  const { sandboxStatus } = loadSandbox();
  const sb = await sandboxStatus().catch(() => null);
  if (sb && existsSync(sb.config)) {
    note(`switchyard: no --config, SWITCHYARD_CONFIG or ./switchyard.yaml; using the running sandbox's topology ${sb.config}`);
    return sb.config;
  }
  return path;
}

/** The cluster named on the command line must be in the topology: else a usage error (exit 2) naming the file. */
export function requireCluster(configPath: string, cluster: string): ClusterConfig {
  const top = loadTopology(configPath);
  if (!top.clusters[cluster])
    throw new UsageError(
      `${configPath}: unknown cluster "${cluster}"; the topology has: ${Object.keys(top.clusters)
        .map((k) => `"${k}"`)
        .join(', ')}`,
    );
  return top.clusters[cluster];
}
