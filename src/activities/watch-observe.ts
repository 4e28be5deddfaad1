/**
 * The watch's probe: the readiness reads that matter for availability, taken together in one
 * activity so that a watch probing every few seconds for weeks keeps a small history. It calls
 * the same activity functions readiness calls one by one (the same reads, the same verdicts);
 * every read that fails is reported as a failed read, never as a dead or healthy part.
 */
import type { PgBackupEntry } from '../contract/backup';
import type { FenceState, PgLag, PgNodeStatus, PgWriteProbe, SshCheck, TrafficState, VantageView } from '../contract/observations';
import { backupObservation, type WatchObservations } from '../contract/readiness';
import { errorMessage } from './activity-context';
import type { Runtime } from './runtime';

/** The activity functions the watch's probe is made of (bound by createActivities). */
export interface WatchReads {
  pgStatus(i: { cluster: string; node: string }): Promise<PgNodeStatus>;
  pgWriteProbe(i: { cluster: string; node: string }): Promise<PgWriteProbe>;
  pgLag(i: { cluster: string; primary: string; standby: string }): Promise<PgLag>;
  sshCheck(i: { cluster: string; host: string; pooled?: boolean }): Promise<SshCheck>;
  trafficRead(i: { cluster: string; driver: string }): Promise<TrafficState>;
  fenceRead(i: { cluster: string; node: string }): Promise<FenceState>;
  pgBackupList(i: { cluster: string }): Promise<PgBackupEntry[]>;
  vantageProbe(i: { cluster: string; site: string }): Promise<VantageView[]>;
}

export function watchObserveActivities(rt: Runtime, r: WatchReads) {
  return {
    /**
     * `full: false`: only what availability needs this interval (each node, the write, the lag,
     * the vantage points when no primary answers); the hosts, traffic, fences and backups are
     * left out (empty) and the watch keeps its last full reading of them.
     */
    watchObserve: rt.activity(async (input: { cluster: string; full?: boolean }, call): Promise<WatchObservations> => {
      const full = input.full !== false;
      const cluster = input.cluster;
      const c = call.top.cluster(cluster);
      const nodeNames = Object.keys(c.postgres.nodes);
      const nodeOf = (node: string) => c.postgres.nodes[node];
      const [nodes, ssh, traffic, fences, backups] = await Promise.all([
        Promise.all(
          nodeNames.map((node) =>
            r.pgStatus({ cluster, node }).catch((err): PgNodeStatus => ({
              cluster,
              node,
              site: nodeOf(node).site,
              reachable: false,
              unreachable: 'unknown',
              error: `the status read failed: ${errorMessage(err)}`,
            })),
          ),
        ),
        Promise.all(
          Object.entries(full ? c.hosts : {}).map(([host, h]) =>
            r.sshCheck({ cluster, host, pooled: true }).catch((err): SshCheck => ({
              host,
              site: h.site ?? null,
              address: h.address,
              port: h.port,
              ok: false,
              outcome: 'error',
              detail: errorMessage(err),
            })),
          ),
        ),
        Promise.all(
          (full ? c.traffic : []).map((d) =>
            r
              .trafficRead({ cluster, driver: d.name })
              .catch((err): TrafficState => ({ driver: d.name, kind: d.kind, site: null, target: null, detail: `cannot read: ${errorMessage(err)}` })),
          ),
        ),
        Promise.all(
          (full ? nodeNames : []).map((node) =>
            r.fenceRead({ cluster, node }).catch((err): FenceState => ({
              node,
              readable: false,
              marker: null,
              standbySignal: null,
              detail: `cannot read the fence of ${node}: ${errorMessage(err)}`,
            })),
          ),
        ),
        c.backup && full
          ? r
              .pgBackupList({ cluster })
              .then(backupObservation)
              .catch((err) => ({ newestProven: null, complete: 0, error: errorMessage(err) }))
          : Promise.resolve(null),
      ]);
      const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
      let probe: PgWriteProbe | null = null;
      const lags: PgLag[] = [];
      let vantage: VantageView[] = [];
      if (primaries.length === 1) {
        const p = primaries[0];
        const standbys = nodes.filter((n) => n !== p && n.reachable && n.inRecovery);
        const [w, ...ls] = await Promise.all([
          r
            .pgWriteProbe({ cluster, node: p.node })
            .catch((err): PgWriteProbe => ({ node: p.node, ok: false, detail: `the write probe failed: ${errorMessage(err)}` })),
          ...standbys.map((s) => r.pgLag({ cluster, primary: p.node, standby: s.node }).catch(() => null)),
        ]);
        probe = w as PgWriteProbe;
        for (const l of ls) if (l) lags.push(l as PgLag);
      } else if (primaries.length === 0) {
        // No primary answers the worker: is that so from the other sites too?
        const sites = Object.entries(c.sites).filter(([, s]) => s.vantage);
        vantage = (await Promise.all(sites.map(([site]) => r.vantageProbe({ cluster, site })))).flat();
      }
      return { nodes, probe, lags, ssh, traffic, fences, backups, vantage, full };
    }),
  };
}
