/**
 * What readiness observes and reports: the observations of one run, each check, and the report
 * (read by the client, by later runbooks' data-loss gate and by the history activity).
 */
import type { ClusterLayout } from '../topology/layout';
import type { PgBackupEntry } from './backup';
import type { WalArchiveStatus } from './wal-archive';
import type {
  Ec2InstanceInfo,
  FenceState,
  MaintenanceState,
  PgLag,
  PgNodeStatus,
  PgWriteProbe,
  ServiceState,
  SshCheck,
  TrafficState,
  VantageView,
} from './observations';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface Observations {
  layout: ClusterLayout;
  nodes: PgNodeStatus[];
  probe: PgWriteProbe | null;
  lags: PgLag[];
  ssh: SshCheck[];
  services: ServiceState[];
  maintenance: MaintenanceState[];
  traffic: TrafficState[];
  ec2: Ec2InstanceInfo[] | null;
  /** The newest backup a drill proved restorable (null: none, or the cluster has no backups configured; absent in older runs). */
  backups?: BackupObservation | null;
  /** What each node's data directory says about a failover's fence (absent in older runs). */
  fences?: FenceState[];
  /** The continuous WAL archive (backup.archive): its lag behind the primary, or why it could not be read (absent in older runs and without an archive). */
  archive?: WalArchiveStatus | { error: string };
}

export interface BackupObservation {
  newestProven: { backupId: string; provenAt: string; finishedAt: string | null } | null;
  /** Complete base backups seen. */
  complete: number;
  /** The newest complete base backup, from its manifest (absent in older runs). */
  newestComplete?: { backupId: string; finishedAt: string; totalBytes: number } | null;
  /** Set when the backup server could not be asked. */
  error: string | null;
}

export interface ReadinessReport {
  cluster: string;
  ready: boolean;
  primarySite: string | null;
  primaryNode: string | null;
  /** The (first) standby; a two-site cluster has one. */
  standbySite: string | null;
  standbyNode: string | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  /** Where each traffic driver points: driver name → site (null when it points nowhere known). */
  traffic: Record<string, { kind: TrafficState['kind']; site: string | null; target: string | null }>;
  checks: ReadinessCheck[];
  /** The highest LSN known for the primary at observation time (for a later data-loss gate). */
  primaryLsn: string | null;
  /** Age of the newest backup a drill proved restorable (from when it was made); null when none or not looked at. */
  newestProvenBackupAgeSeconds?: number | null;
  /** How far the WAL archive is behind the primary (the RPO of a point-in-time restore now); null when unknown or there is no archive. */
  archiveLagSeconds?: number | null;
  archiveLagBytes?: number | null;
  observedAt: string;
  observations: Omit<Observations, 'layout'>;
}

/**
 * What the watch sees in one probe (one activity, so a long watch's history stays small): the
 * readiness observations that matter for availability, and the other sites' vantage views when
 * no node answered the worker as the primary.
 */
export interface WatchObservations {
  nodes: PgNodeStatus[];
  probe: PgWriteProbe | null;
  lags: PgLag[];
  ssh: SshCheck[];
  traffic: TrafficState[];
  fences: FenceState[];
  backups: BackupObservation | null;
  vantage: VantageView[];
  /** False when the hosts, traffic, fences and backups were not read this time (absent: read). */
  full?: boolean;
}

/** What readiness sees of the base backups on the backup server: the newest one a drill proved. */
export function backupObservation(list: PgBackupEntry[]): BackupObservation {
  const made = (b: PgBackupEntry) => Date.parse(b.manifest?.finishedAt ?? b.drill?.provenAt ?? '1970-01-01T00:00:00Z');
  const proven = list.filter((b) => b.complete && b.drill).sort((a, b) => made(b) - made(a))[0];
  const complete = list.filter((b) => b.complete && b.manifest).sort((a, b) => made(b) - made(a))[0];
  return {
    newestProven: proven ? { backupId: proven.backupId, provenAt: proven.drill!.provenAt, finishedAt: proven.manifest?.finishedAt ?? null } : null,
    newestComplete: complete ? { backupId: complete.backupId, finishedAt: complete.manifest!.finishedAt, totalBytes: complete.manifest!.totalBytes } : null,
    complete: list.filter((b) => b.complete).length,
    error: null,
  };
}
