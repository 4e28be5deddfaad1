/**
 * readiness: is the cluster ready to fail over? Read-only; changes nothing except one heartbeat
 * row written on the primary to prove it takes writes (the write also gives the standby a fresh
 * position to be measured against).
 */
import { patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities } from '../contract/backup';
import type { WalArchiveActivities, WalArchiveStatus } from '../contract/wal-archive';
import type { Activities } from '../activities';
import type { FenceState, PgLag, PgNodeStatus } from '../contract/observations';
import { assessReadiness, backupObservation, primariesOf } from './lib/readiness-assess';
import { type BackupObservation, type ReadinessReport } from '../contract/readiness';
import { messageOf, StepLog } from './lib/steps';
import { READINESS_BACKUP_READ, READINESS_READ } from './lib/activity-options';

export interface ReadinessInput {
  cluster: string;
}

const reads = proxyActivities<Activities>(READINESS_READ);
const backupReads = proxyActivities<BackupActivities>(READINESS_BACKUP_READ);
const archiveReads = proxyActivities<WalArchiveActivities>(READINESS_BACKUP_READ);

export async function readiness(input: ReadinessInput): Promise<ReadinessReport> {
  const { cluster } = input;
  const steps = new StepLog('readiness', cluster);
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.sites.join(', ')}; ${l.nodes.length} database nodes, ${l.hosts.length} hosts, ${l.traffic.length} traffic drivers`,
  );

  const [nodes, ssh, services, maintenance, traffic, ec2] = await Promise.all([
    Promise.all(layout.nodes.map((n) => steps.run(`postgres:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode))),
    Promise.all(
      layout.hosts.map((h) =>
        steps.run(
          `ssh:${h.name}`,
          () => reads.sshCheck({ cluster, host: h.name }),
          (r) => r.detail,
        ),
      ),
    ),
    Promise.all(
      layout.services.map((s) =>
        steps.run(
          `service:${s.site}/${s.service}`,
          () => reads.serviceStatus({ cluster, site: s.site, service: s.service }),
          (r) => (r.running === null ? r.detail : r.running ? 'running' : 'stopped'),
        ),
      ),
    ),
    Promise.all(
      layout.maintenance.map((m) =>
        steps.run(
          `maintenance:${m.site}`,
          () => reads.maintenanceStatus({ cluster, site: m.site }),
          (r) => r.detail,
        ),
      ),
    ),
    Promise.all(
      layout.traffic.map((d) =>
        steps.run(
          `traffic:${d.name}`,
          () => reads.trafficRead({ cluster, driver: d.name }),
          (r) => `${r.site ?? 'no site'}${r.target ? ` (${r.target})` : ''}`,
        ),
      ),
    ),
    layout.ec2
      ? steps.run(
          'ec2',
          () => reads.ec2Instances({ cluster }),
          (r) => r.map((i) => `${i.node}: ${i.instanceId ?? 'not found'}`).join(', '),
        )
      : Promise.resolve(null),
  ]);

  const primaries = primariesOf(nodes);
  let probe = null;
  const lags: PgLag[] = [];
  if (primaries.length === 1) {
    const primary = primaries[0];
    probe = await steps.run(
      'write-probe',
      () => reads.pgWriteProbe({ cluster, node: primary.node }),
      (r) => r.detail,
    );
    for (const s of nodes.filter((n) => n !== primary && n.reachable && n.inRecovery)) {
      lags.push(
        await steps.run(
          `lag:${s.node}`,
          () => reads.pgLag({ cluster, primary: primary.node, standby: s.node }),
          (l) => `${l.lagBytes ?? '?'} bytes, ${l.lagSeconds ?? '?'} s`,
        ),
      );
    }
  } else {
    steps.skip('write-probe', primaries.length === 0 ? 'no primary found' : `${primaries.length} nodes out of recovery`);
  }

  // Runs recorded before backups existed replay without this step.
  let backups: BackupObservation | null = null;
  if (layout.backup && patched('readiness-backup-age')) {
    backups = await steps
      .run(
        'backups',
        () => backupReads.pgBackupList({ cluster }),
        (l) => `${l.filter((b) => b.complete).length} complete base backups, ${l.filter((b) => b.drill).length} proven restorable`,
      )
      .then(backupObservation)
      .catch((err: unknown): BackupObservation => ({ newestProven: null, complete: 0, error: err instanceof Error ? messageOf(err) : String(err) }));
  }

  // Issue 11: a failover's fence marker makes a node "fenced, run rejoin" (recorded runs replay without it).
  let fences: FenceState[] | undefined;
  if (patched('readiness-fence')) {
    fences = await Promise.all(
      layout.nodes.map((n) =>
        steps
          .run(
            `fence:${n.name}`,
            () => reads.fenceRead({ cluster, node: n.name }),
            (f) => f.detail,
          )
          .catch((err: unknown): FenceState => ({
            node: n.name,
            readable: false,
            marker: null,
            standbySignal: null,
            detail: `cannot read the fence of ${n.name}: ${err instanceof Error ? messageOf(err) : String(err)}`,
          })),
      ),
    );
  }

  // Issue 16: the WAL archive's lag (recorded runs replay without it).
  let archive: WalArchiveStatus | { error: string } | undefined;
  if (layout.backup?.archive && patched('readiness-archive')) {
    archive = await steps
      .run(
        'archive',
        () => archiveReads.walArchiveStatus({ cluster }),
        (a) => a.detail,
      )
      .catch((err: unknown) => ({ error: err instanceof Error ? messageOf(err) : String(err) }));
  }

  const report = assessReadiness(
    { layout, nodes, probe, lags, ssh, services, maintenance, traffic, ec2, backups, ...(fences ? { fences } : {}), ...(archive ? { archive } : {}) },
    new Date(workflowInfo().runStartTime).toISOString(),
  );
  const failed = report.checks.filter((c) => !c.ok);
  steps.note(
    'verdict',
    report.ready
      ? `ready: ${report.primarySite} primary, ${report.standbySite ?? 'no'} standby`
      : `not ready: ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}`,
    report.ready ? 'done' : 'failed',
  );
  return report;
}

function describeNode(n: PgNodeStatus): string {
  if (!n.reachable) return `unreachable: ${n.error ?? 'no answer'}`;
  if (n.inRecovery) return `standby, received ${n.receiveLsn ?? '?'}, replayed ${n.replayLsn ?? '?'}, WAL receiver ${n.walReceiver?.status ?? 'not running'}`;
  return `primary at ${n.currentLsn ?? '?'} on timeline ${n.timeline ?? '?'}`;
}
