/**
 * Resolving names against the worker's topology: an unknown cluster, node, host, site or driver is
 * a non-retryable ConfigError that lists what exists; integer inputs are checked against bounds.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, DbNodeConfig, HostConfig, SiteConfig, Topology, TrafficDriverConfig } from '../topology/schema';
import { Errors } from '../contract/errors';

export function configError(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, Errors.ConfigError);
}

function listKnown(known: string[]): string {
  return known.length ? known.map((k) => `"${k}"`).join(', ') : 'none';
}

function lookup<T>(kind: string, name: string, record: Record<string, T>, where: string): T {
  if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(record, name)) {
    throw configError(`unknown ${kind} ${JSON.stringify(name)}${where}; known: ${listKnown(Object.keys(record))}`);
  }
  return record[name];
}

/** Name lookups against one topology snapshot (taken once per activity call). */
export class Resolver {
  constructor(readonly topology: Topology) {}

  cluster(name: string): ClusterConfig {
    return lookup('cluster', name, this.topology.clusters, '');
  }
  node(cluster: string, name: string): DbNodeConfig {
    return lookup('database node', name, this.cluster(cluster).postgres.nodes, ` in cluster "${cluster}"`);
  }
  host(cluster: string, name: string): HostConfig {
    return lookup('host', name, this.cluster(cluster).hosts, ` in cluster "${cluster}"`);
  }
  site(cluster: string, name: string): SiteConfig {
    return lookup('site', name, this.cluster(cluster).sites, ` in cluster "${cluster}"`);
  }
  driver(cluster: string, name: string): TrafficDriverConfig {
    const drivers = this.cluster(cluster).traffic;
    const d = drivers.find((x) => x.name === name);
    if (!d) throw configError(`unknown traffic driver ${JSON.stringify(name)} in cluster "${cluster}"; known: ${listKnown(drivers.map((x) => x.name))}`);
    return d;
  }
  /** The database node of a site, as [name, config]. */
  nodeOfSite(cluster: string, site: string): [string, DbNodeConfig] {
    this.site(cluster, site);
    const entry = Object.entries(this.cluster(cluster).postgres.nodes).find(([, n]) => n.site === site);
    if (!entry) throw configError(`site "${site}" of cluster "${cluster}" has no database node`);
    return entry;
  }
}

/** An integer input within bounds, or the fallback when it is absent; anything else is a ConfigError. */
export function checkedInt(v: unknown, name: string, fallback: number | undefined, min: number, max: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw configError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}
