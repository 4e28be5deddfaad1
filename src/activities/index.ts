/**
 * The activities: every side effect switchyard has, built from injectable clients so tests can
 * hand in real or fake ones. Each takes one plain-JSON object naming things by name (cluster,
 * node, host, site, driver), resolves them in the worker's topology and returns plain JSON.
 *
 * Sorted by what they act on: ssh/ (sessions, exec, the one remote file read/write), postgres/
 * (one operation per file), backup/ (pg and EBS), traffic/ (one file per driver), site.ts, ec2.ts,
 * notify.ts, cluster-lock.ts, guard.ts, history.ts. Each file's factory binds plain functions to
 * the Runtime (runtime.ts); this one binds them all.
 */
import { Runtime, type ActivityDeps } from './runtime';
import type { BackupActivities } from '../contract/backup';
import { ebsCopyActivities } from './backup/ebs-copy';
import { ebsRestoreActivities } from './backup/ebs-restore';
import { ebsRestorePlanActivities } from './backup/ebs-restore-plan';
import { ebsSnapshotActivities } from './backup/ebs-snapshot';
import { pgBackupCatalogActivities } from './backup/pg-catalog';
import { pgBackupCreateActivities } from './backup/pg-create';
import { pgDrillActivities } from './backup/pg-drill';
import { pgRestoreActivities } from './backup/pg-restore';
import { pgBackupStoreActivities } from './backup/store-backup';
import { fileSetActivities } from './backup/file-sets';
import type { FileSetActivities } from '../contract/backup-files';
import { walArchiveActivities } from './backup/wal-archive';
import { pgRestorePitrActivities } from './backup/pg-restore-pitr';
import type { WalArchiveActivities } from '../contract/wal-archive';
import { ec2Activities } from './ec2';
import { fenceActivities } from './postgres/fence';
import { guardActivities } from './guard';
import { historyActivities } from './history';
import { lockActivities } from './cluster-lock';
import { createLayoutActivities } from './cluster-layout';
import { notifyActivities } from './notify';
import { pgctlActivities } from './postgres/lifecycle';
import { postgresActivities } from './postgres/status';
import { basebackupActivities } from './postgres/basebackup';
import { replicationWaitActivities } from './postgres/replication-waits';
import { rewindActivities } from './postgres/rewind';
import { slotActivities } from './postgres/slots';
import { standbyConfigActivities } from './postgres/standby-config';
import { writeProbeActivities } from './postgres/write-probe';
import { remoteActivities } from './site';
import { trafficActivities } from './traffic';
import { vantageActivities } from './vantage';
import { watchMemoryActivities } from './watch-memory';
import { watchObserveActivities } from './watch-observe';

export function createActivities(deps: ActivityDeps) {
  const rt = new Runtime(deps);
  const acts = {
    ...createLayoutActivities(deps.topology),
    ...postgresActivities(rt),
    ...pgctlActivities(rt),
    ...fenceActivities(rt),
    ...writeProbeActivities(rt),
    ...slotActivities(rt),
    ...rewindActivities(rt),
    ...basebackupActivities(rt),
    ...standbyConfigActivities(rt),
    ...replicationWaitActivities(rt),
    ...remoteActivities(rt),
    ...ec2Activities(rt),
    ...trafficActivities(rt),
    ...notifyActivities(rt),
    ...lockActivities(rt),
    ...guardActivities(rt),
    ...historyActivities(rt),
    ...ebsSnapshotActivities(rt),
    ...ebsCopyActivities(rt),
    ...ebsRestorePlanActivities(rt),
    ...ebsRestoreActivities(rt),
    ...pgBackupCatalogActivities(rt),
    ...pgBackupCreateActivities(rt),
    ...pgBackupStoreActivities(rt),
    ...fileSetActivities(rt),
    ...walArchiveActivities(rt),
    ...pgRestorePitrActivities(rt),
    ...pgDrillActivities(rt),
    ...pgRestoreActivities(rt),
    ...vantageActivities(rt),
    ...watchMemoryActivities(rt),
  };
  // The watch's probe is made of the reads above.
  return { ...acts, ...watchObserveActivities(rt, acts) };
}

export type Activities = ReturnType<typeof createActivities>;
/** The backup workflows call these through the BackupActivities contract: checked here. */
export type BackupActivitiesImplemented = Activities extends BackupActivities ? true : never;
const backupContract: BackupActivitiesImplemented = true;
void backupContract;
const walArchiveContract: Activities extends WalArchiveActivities ? true : never = true;
void walArchiveContract;
const fileSetContract: Activities extends FileSetActivities ? true : never = true;
void fileSetContract;

export type { ActivityDeps, ActivityTimeouts, Ec2ClientConfig, PgClientLike } from './runtime';
export type { SshConnectConfig, SshExecResult, SshSessionLike } from './ssh/session';
export { DEFAULT_TIMEOUTS } from './runtime';
export { MAX_OUTPUT_CHARS } from './ssh/exec';
export type { NotifyInput } from './notify';
export type { LockAcquireInput, LockAcquireResult, LockReleaseInput } from './cluster-lock';
export type { PgEnsureSlotInput } from './postgres/slots';
export type { PgRewindInput } from './postgres/rewind';
export type { PgBasebackupInput } from './postgres/basebackup';
export type { CopyConfigFilesInput, PgConfigureStandbyInput } from './postgres/standby-config';
export type { PgWaitReplayInput, PgWaitStreamingInput } from './postgres/replication-waits';
export type { WriteProbeLoopInput } from './postgres/write-probe';
export * from '../contract/observations';
export * from '../contract/backup';
