/**
 * A cluster's shape without a single secret or command: what a workflow may know to plan its
 * steps (which nodes, hosts, services and drivers exist). Returned by the clusterLayout activity,
 * so it lands in history; keep it free of passwords, keys and command lines.
 */
import { resolveApprovers } from './checkpoints';
import { consoleUrl, type ConsoleConfig, type Operators } from './operators';
import { durationSeconds } from './duration';
import type { ClusterConfig, TrafficDriverConfig } from './schema';

export interface ClusterLayout {
  cluster: string;
  preferredPrimary: string;
  sites: string[];
  /** `stonith`: the node has a STONITH command (absent in layouts recorded before it existed: false). */
  nodes: { name: string; site: string; sshHost: string; host: string; port: number; slot: string; ec2: boolean; stonith?: boolean }[];
  /** site null: shared infrastructure (a load balancer in front of both sites). */
  hosts: { name: string; site: string | null; address: string; port: number }[];
  services: { site: string; service: string; host: string }[];
  maintenance: { site: string; host: string | null; appUrl: string | null }[];
  /** Per site, the SSH host the watch probes the other sites from (absent in layouts recorded before it existed: none). */
  vantages?: { site: string; host: string }[];
  /** In move order; `timeoutSeconds` only for `command` drivers (their activity options are derived from it). */
  traffic: { name: string; kind: TrafficDriverConfig['kind']; timeoutSeconds?: number }[];
  ec2: boolean;
  maxLagBytes: number;
  dataLossThresholdBytes: number;
  /**
   * Hooks run on a site after its database is promoted, in order (names and hosts only; `check`:
   * whether the hook has a check command, which decides how often it may be attempted; absent in
   * layouts recorded before it existed, read as false).
   */
  hooks: { site: string; name: string; host: string; timeoutSeconds: number; check: boolean }[];
  /** `automatic` and `automaticCoolDown` are absent in layouts recorded before the watch's automatic mode (read: off). */
  failover: ClusterConfig['failover'];
  switchover: ClusterConfig['switchover'];
  rejoin: ClusterConfig['rejoin'];
  checkpoints: CheckpointLayout;
  notify: boolean;
  /** Backups: where they are kept and how long; null when the cluster has no `backup` section. */
  backup: {
    host: string;
    root: string;
    kinds: ('pg' | 'ebs')[];
    keepLast: number;
    maxAgeSeconds: number;
    maxRestorableAgeSeconds: number | null;
    drillPort: number;
    verifyQueries: number;
    /** The offsite store, as `s3://<bucket>/<prefix>`; absent when the cluster has none (and in layouts recorded before stores existed). */
    store?: string;
    /** File sets (backup.files): name, host, paths, whether encrypted (never the key); absent without any (and in layouts recorded before file sets existed). */
    files?: { set: string; host: string; paths: string[]; mode: 'keep-permissions' | 'contents-only'; encrypt: boolean }[];
    /** WAL archiving (backup.archive): its slot, interval and the readiness bound in seconds; absent without it (and in layouts recorded before it existed). */
    archive?: { slot: string; intervalSeconds: number; maxLagSeconds: number | null };
    /** EBS snapshot copies in other regions, each with its own retention there; absent without `backup.ebs` (and in layouts recorded before copies existed). */
    ebs?: { copyTo: { region: string; keepLast: number; maxAgeSeconds: number; kmsKeyId?: string }[] };
  } | null;
}

/**
 * A cluster's checkpoint policy as a workflow applies it: approver names resolved (groups
 * expanded, lowercase) and the public keys that verify signed decisions. The fields after
 * `deadlineSeconds` are absent in layouts recorded before operators existed: one approval, unsigned
 * decisions accepted, no keys.
 */
export interface CheckpointLayout {
  /** Who may decide; empty means anyone who can reach the run. */
  approvers: string[];
  twoPerson: boolean;
  remindAfterSeconds: number;
  deadlineSeconds: number;
  verifiedDecisions?: 'required' | 'optional';
  /** Per checkpoint: distinct approvals needed and who may give them (resolved). */
  approvals?: Record<string, { approvals: number; approvers: string[] }>;
  /** Ed25519 public keys (hex) by signer: "console", or "operator:<name>". */
  keys?: Record<string, string>;
  /** Where the console is, for the links in prompts and refusals; null when none is configured. */
  consoleUrl?: string | null;
}

/** Who signs in and signs decisions (the topology's `operators` and `console`). */
export interface Access {
  operators: Operators;
  console?: ConsoleConfig;
}

export function clusterLayout(name: string, c: ClusterConfig, access: Access = { operators: {} }): ClusterLayout {
  return {
    cluster: name,
    preferredPrimary: c.preferredPrimary,
    sites: Object.keys(c.sites),
    nodes: Object.entries(c.postgres.nodes).map(([n, node]) => ({
      name: n,
      site: node.site,
      sshHost: node.sshHost,
      host: node.host,
      port: node.port,
      slot: node.slot,
      ec2: node.ec2 !== undefined,
      stonith: node.stonith !== undefined,
    })),
    hosts: Object.entries(c.hosts).map(([h, host]) => ({ name: h, site: host.site ?? null, address: host.address, port: host.port })),
    services: Object.entries(c.sites).flatMap(([site, s]) => Object.entries(s.services).map(([service, svc]) => ({ site, service, host: svc.host }))),
    maintenance: Object.entries(c.sites)
      .filter(([, s]) => s.maintenance !== undefined || s.app !== undefined)
      .map(([site, s]) => ({ site, host: s.maintenance?.host ?? null, appUrl: s.app?.url ?? null })),
    vantages: Object.entries(c.sites).flatMap(([site, s]) => (s.vantage ? [{ site, host: s.vantage.host }] : [])),
    traffic: c.traffic.map((d) => (d.kind === 'command' ? { name: d.name, kind: d.kind, timeoutSeconds: d.timeoutSeconds } : { name: d.name, kind: d.kind })),
    ec2: c.ec2 !== undefined,
    maxLagBytes: c.postgres.maxLagBytes,
    dataLossThresholdBytes: c.postgres.dataLossThresholdBytes,
    hooks: Object.entries(c.sites).flatMap(([site, s]) =>
      s.hooks.afterPromote.map((h) => ({ site, name: h.name, host: h.host, timeoutSeconds: h.timeoutSeconds, check: h.check !== undefined })),
    ),
    failover: { ...c.failover },
    switchover: { ...c.switchover },
    rejoin: { ...c.rejoin },
    checkpoints: checkpointLayout(c.checkpoints, access),
    notify: c.notify.webhook !== undefined,
    backup: c.backup
      ? {
          host: c.backup.host,
          root: c.backup.root,
          kinds: [...c.backup.kinds],
          keepLast: c.backup.keepLast,
          maxAgeSeconds: durationSeconds(c.backup.maxAge),
          maxRestorableAgeSeconds: c.backup.maxRestorableAge ? durationSeconds(c.backup.maxRestorableAge) : null,
          drillPort: c.backup.drillPort,
          verifyQueries: c.backup.verifyQueries.length,
          ...(c.backup.store ? { store: `s3://${c.backup.store.bucket}/${c.backup.store.prefix}` } : {}),
          ...(c.backup.files && Object.keys(c.backup.files).length
            ? {
                files: Object.entries(c.backup.files).map(([set, f]) => ({ set, host: f.host, paths: [...f.paths], mode: f.mode, encrypt: f.encrypt })),
              }
            : {}),
          ...(c.backup.archive
            ? {
                archive: {
                  slot: c.backup.archive.slot,
                  intervalSeconds: c.backup.archive.intervalSeconds,
                  maxLagSeconds: c.backup.maxArchiveLag ? durationSeconds(c.backup.maxArchiveLag) : null,
                },
              }
            : {}),
          ...(c.backup.ebs
            ? {
                ebs: {
                  copyTo: c.backup.ebs.copyTo.map((t) => ({
                    region: t.region,
                    keepLast: t.keepLast,
                    maxAgeSeconds: durationSeconds(t.maxAge),
                    ...(t.kmsKeyId ? { kmsKeyId: t.kmsKeyId } : {}),
                  })),
                },
              }
            : {}),
        }
      : null,
  };
}

function checkpointLayout(cp: ClusterConfig['checkpoints'], access: Access): CheckpointLayout {
  const keys: Record<string, string> = {};
  if (access.console?.publicKey) keys.console = access.console.publicKey;
  for (const [n, o] of Object.entries(access.operators)) if (o.publicKey) keys[`operator:${n}`] = o.publicKey;
  const approvers = resolveApprovers(cp.approvers, access.operators);
  return {
    approvers,
    twoPerson: cp.twoPerson,
    remindAfterSeconds: durationSeconds(cp.remindAfter),
    deadlineSeconds: durationSeconds(cp.deadline),
    verifiedDecisions: cp.verifiedDecisions,
    approvals: Object.fromEntries(
      Object.entries(cp.approvals).map(([name, r]) => [
        name,
        { approvals: r.approvals, approvers: r.approvers ? resolveApprovers(r.approvers, access.operators) : approvers },
      ]),
    ),
    keys,
    consoleUrl: consoleUrl(access.console),
  };
}
