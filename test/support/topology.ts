/**
 * One valid topology for unit tests: cluster "main" with sites dc1 and dc2, a host and a database
 * node in each, and SSH settings, so a test writes only the parts it is about. An override replaces
 * the default of its key, except `ssh` and `postgres`, whose fields replace the default's one by one.
 */
import { topologySchema, type Topology, type TopologyInput } from '../../src/topology/schema';

type ClusterInput = TopologyInput['clusters'][string];

export type ClusterOverrides = Partial<Omit<ClusterInput, 'ssh' | 'postgres'>> & {
  ssh?: Partial<ClusterInput['ssh']>;
  postgres?: Partial<ClusterInput['postgres']>;
};

/** A well-formed ed25519 public key whose private half nobody has: for hosts no test connects to. */
export const FAKE_HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5';

/** The topology input with cluster "main" as the defaults and `overrides` make it; `top` adds top-level sections (operators, console). */
export function topologyInput(overrides: ClusterOverrides = {}, top: Partial<Pick<TopologyInput, 'operators' | 'console'>> = {}): TopologyInput {
  const { ssh, postgres, ...rest } = overrides;
  return {
    version: 1,
    ...top,
    clusters: {
      main: {
        preferredPrimary: 'dc1',
        sites: { dc1: {}, dc2: {} },
        hosts: {
          h1: { site: 'dc1', address: '10.0.0.1', hostKey: FAKE_HOST_KEY },
          h2: { site: 'dc2', address: '10.0.0.2', hostKey: FAKE_HOST_KEY },
        },
        ...rest,
        ssh: { user: 'ops', privateKey: { env: 'KEY' }, ...ssh },
        postgres: {
          user: 'u',
          replication: { user: 'u' },
          nodes: {
            a: { site: 'dc1', sshHost: 'h1', host: '10.0.0.1', dataDir: '/d', binDir: '/b', slot: 'a' },
            b: { site: 'dc2', sshHost: 'h2', host: '10.0.0.2', dataDir: '/d', binDir: '/b', slot: 'b' },
          },
          ...postgres,
        },
      },
    },
  };
}

/** The topology with cluster "main" as the defaults and `overrides` make it, parsed (defaults filled in). */
export function buildTopology(overrides: ClusterOverrides = {}, top: Partial<Pick<TopologyInput, 'operators' | 'console'>> = {}): Topology {
  return topologySchema.parse(topologyInput(overrides, top));
}
