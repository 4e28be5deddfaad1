import { ApplicationFailure } from '@temporalio/common';
import { clusterLayout, type ClusterLayout } from '../topology/layout';
import type { Topology } from '../topology/schema';

/** The cluster's shape for a workflow to plan with: names and addresses, never secrets or commands. */
export function createLayoutActivities(topology: () => Topology) {
  return {
    async clusterLayout({ cluster }: { cluster: string }): Promise<ClusterLayout> {
      const top = topology();
      const c = top.clusters[cluster];
      if (!c) {
        throw ApplicationFailure.nonRetryable(
          `unknown cluster "${cluster}"; the worker's topology has: ${Object.keys(top.clusters)
            .map((k) => `"${k}"`)
            .join(', ')}`,
          'ConfigError',
        );
      }
      return clusterLayout(cluster, c, { operators: top.operators, console: top.console });
    },
  };
}
