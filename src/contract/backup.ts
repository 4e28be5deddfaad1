/**
 * What the backup, restore and drill activities take and return, shared by activities, workflows
 * and the client (the contract: pure, no Node imports). Everything is plain JSON that lands in
 * workflow history: no secret belongs here.
 *
 * A backup is identified by its backup id (BACKUP_ID_RE) within a cluster. Its parts:
 * - "pg": a base backup on the backup server (topology `backup.host`) in
 *   <backup.root>/<cluster>/<backupId>/ : base.tar.gz, pg_wal.tar.gz, backup_manifest (PostgreSQL's
 *   own), switchyard-manifest.json (PgBackupManifest, written last: a directory without it is
 *   incomplete), and drill.json (PgDrillRecord) once a drill proved it restores.
 *   While pg_basebackup runs the directory is <backupId>.partial; it is renamed when complete.
 * - "ebs": one EBS snapshot per volume of the source node's instance, taken together (one
 *   CreateSnapshots call: crash-consistent), tagged (EBS_TAGS) with the cluster, backup id, node,
 *   workflow id, created-by and what a restore needs; optionally copied to other regions
 *   (backup.ebs.copyTo), each copy tagged also with its source snapshot and region.
 */

/** A backup id: safe as a directory name and a tag value. */
export const BACKUP_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Tag keys on EBS snapshots (and on instances/images a restore makes). */
export const EBS_TAGS = {
  cluster: 'switchyard:cluster',
  backupId: 'switchyard:backup-id',
  node: 'switchyard:node',
  workflowId: 'switchyard:workflow-id',
  createdBy: 'switchyard:created-by',
  /**
   * JSON of EbsRestoreMetadata (without `devices`), on every snapshot of the backup. A tag value
   * holds at most 256 characters: longer JSON continues in "switchyard:restore:2", ":3", … (read
   * by concatenating them in order).
   */
  restore: 'switchyard:restore',
  /** The device name the snapshotted volume was attached as, e.g. "/dev/sda1". */
  device: 'switchyard:device',
  /** Whether the volume was deleted with its instance (restored as it was). */
  deleteOnTermination: 'switchyard:delete-on-termination',
  /** On an instance/image made by a restore: the backup id it was restored from. */
  restoredFrom: 'switchyard:restored-from',
  /** The snapshotted volume's type (gp3, io2 …), restored as it was. */
  volumeType: 'switchyard:volume-type',
  /** Provisioned IOPS (io1, io2, gp3) and throughput in MiB/s (gp3) of the snapshotted volume, restored as they were. */
  iops: 'switchyard:iops',
  throughput: 'switchyard:throughput',
  /** On an instance (and image) made by ebsRestoreInstance: the idempotency token of the call that made it. */
  restoreToken: 'switchyard:restore-token',
  /** On a copy of a snapshot in another region (ebsSnapshotCopy): the snapshot it was copied from, and that snapshot's region. */
  sourceSnapshot: 'switchyard:source-snapshot',
  sourceRegion: 'switchyard:source-region',
} as const;

/** How many EC2 API calls an activity made and how many of their attempts were retries (throttling, 5xx). */
export interface Ec2ApiUse {
  calls: number;
  /** Attempts beyond the first, summed over calls ($metadata.attempts - 1). */
  retries: number;
}

// ---- EBS ---------------------------------------------------------------------------------------

export interface EbsDevice {
  device: string;
  volumeId: string;
  sizeGiB: number | null;
  volumeType: string | null;
  deleteOnTermination: boolean;
  /** Provisioned IOPS (io1, io2, gp3) and throughput (gp3), when the volume type has them. */
  iops?: number | null;
  throughput?: number | null;
}

/** What a restore from snapshots needs to recreate the instance, its private address included. */
export interface EbsRestoreMetadata {
  node: string;
  instanceId: string;
  privateIp: string | null;
  securityGroupIds: string[];
  instanceType: string | null;
  subnetId: string | null;
  availabilityZone: string | null;
  imageId: string | null;
  rootDeviceName: string | null;
  /** The instance's tags (a restored instance gets them back, so the node's selector finds it); "aws:" ones are EC2's own and left out. */
  tags: Record<string, string>;
  devices: EbsDevice[];
  /** What an image registered from the root snapshot must declare to boot like the original ("x86_64", "arm64"). */
  architecture?: string | null;
  enaSupport?: boolean | null;
  /** "legacy-bios" | "uefi" when EC2 reports it. */
  bootMode?: string | null;
}

export interface EbsSnapshotInfo {
  snapshotId: string;
  volumeId: string;
  device: string | null;
  sizeGiB: number | null;
  state: 'pending' | 'completed' | 'error' | string;
  progress: string | null;
  startTime: string | null;
  description: string | null;
  tags: Record<string, string>;
}

export interface EbsSnapshotCreateInput {
  cluster: string;
  backupId: string;
  /** The database node whose instance's volumes are snapshotted. */
  node: string;
  workflowId: string;
  requestedBy: string;
}

export interface EbsSnapshotCreateResult {
  backupId: string;
  node: string;
  instanceId: string;
  restore: EbsRestoreMetadata;
  /** One per volume of the instance. */
  snapshots: EbsSnapshotInfo[];
  /** Snapshot ids this call made, and those it found already carrying the backup id (a resumed run). */
  created: string[];
  found: string[];
  api: Ec2ApiUse;
  detail: string;
}

export interface EbsSnapshotWaitInput {
  cluster: string;
  backupId: string;
  timeoutSeconds: number;
}

export interface EbsSnapshotWaitResult {
  backupId: string;
  completed: boolean;
  snapshots: EbsSnapshotInfo[];
  waitedMs: number;
  api: Ec2ApiUse;
  detail: string;
}

/**
 * Copies of a backup's snapshots in another region (topology `backup.ebs.copyTo`): each copy
 * carries the source's tags plus EBS_TAGS.sourceSnapshot and EBS_TAGS.sourceRegion, so the copy
 * region's catalog, retention and restores read it like the original.
 */
export interface EbsSnapshotCopyInput {
  cluster: string;
  backupId: string;
  /** One of the regions in backup.ebs.copyTo (its kmsKeyId, if any, encrypts the copies). */
  region: string;
}

export interface EbsSnapshotCopy {
  sourceSnapshotId: string;
  snapshotId: string;
  device: string | null;
  state: string;
}

export interface EbsSnapshotCopyResult {
  backupId: string;
  region: string;
  sourceRegion: string;
  /** One per snapshot of the backup in the source region. */
  copies: EbsSnapshotCopy[];
  /** Copies this call started, and those it found already in the region (a resumed run). */
  created: string[];
  found: string[];
  api: Ec2ApiUse;
  detail: string;
}

export interface EbsCopyWaitInput {
  cluster: string;
  backupId: string;
  region: string;
  timeoutSeconds: number;
}

export interface EbsCopyWaitResult extends EbsSnapshotWaitResult {
  region: string;
}

/** One backup id's snapshots as found in EC2. */
export interface EbsBackupEntry {
  backupId: string;
  node: string | null;
  /** Earliest snapshot start time. */
  createdAt: string | null;
  snapshots: EbsSnapshotInfo[];
  restore: EbsRestoreMetadata | null;
}

export interface EbsDeleteResult {
  backupId: string;
  deleted: string[];
  /** Images a restore registered from these snapshots (named switchyard-<cluster>-<backupId>), deregistered first so the snapshots can go. */
  deregisteredImages?: string[];
  api: Ec2ApiUse;
  detail: string;
}

export interface EbsRestorePlan {
  backupId: string;
  restore: EbsRestoreMetadata;
  snapshots: EbsSnapshotInfo[];
  /** A live (not terminated) instance holding the recorded private IP, if any. */
  ipHeldBy: { instanceId: string; state: string; node: string | null; restoredFrom: string | null } | null;
  /** A network interface holding the recorded private IP that no live instance uses (detached, or its instance is gone): it blocks a restore too. */
  ipInterface?: { networkInterfaceId: string; status: string; instanceId: string | null } | null;
  api: Ec2ApiUse;
  detail: string;
}

export interface EbsTerminateResult {
  instanceId: string;
  terminated: boolean;
  changed: boolean;
  api: Ec2ApiUse;
  detail: string;
}

export interface EbsRestoreInstanceInput {
  cluster: string;
  backupId: string;
  /** Restore in this region from the backup's copies there (backup.ebs.copyTo); default the cluster's ec2.region. */
  region?: string;
  /** Idempotency: a retried call finds the instance this token made instead of launching another. */
  token: string;
  requestedBy: string;
}

export interface EbsRestoreInstanceResult {
  backupId: string;
  instanceId: string;
  imageId: string;
  privateIp: string | null;
  state: string;
  /** false: found from an earlier attempt with the same token. */
  launched: boolean;
  api: Ec2ApiUse;
  detail: string;
}

// ---- PostgreSQL base backups ---------------------------------------------------------------------

export interface PgBackupFile {
  /** Relative to the backup directory. */
  name: string;
  bytes: number;
  sha256: string;
}

/** switchyard-manifest.json */
export interface PgBackupManifest {
  format: 'switchyard-pg-backup/1';
  cluster: string;
  backupId: string;
  sourceNode: string;
  sourceRole: 'primary' | 'standby';
  startedAt: string;
  finishedAt: string;
  startLsn: string;
  endLsn: string;
  timeline: number;
  /** server_version of the source, e.g. "15.18 (Debian 15.18-0+deb12u1)", and its major number. */
  pgVersion: string;
  pgMajor: number;
  systemIdentifier: string | null;
  /** Every file of the backup except switchyard-manifest.json and drill.json. */
  files: PgBackupFile[];
  totalBytes: number;
  /** Sum of the database sizes reported by the source before the backup (uncompressed). */
  databaseBytes: number | null;
  /** In the store's copy of the manifest (and a backup fetched from it): where each file's object is. */
  store?: PgStoreRecord;
}

/** One file of a backup as an object in the store. */
export interface StoredObject {
  /** The file's name in the backup directory. */
  name: string;
  key: string;
  bytes: number;
  /** SHA-256 of the whole file (hex), checked against the manifest on upload and on download. */
  sha256: string;
  /** The object version written (null when the bucket has no versioning). */
  versionId: string | null;
}

/**
 * Where a backup's offsite copy is: the `store` field of the manifest object in the bucket, and
 * switchyard-store.json beside the manifest on the backup host once the upload completed. Objects
 * live under <prefix><cluster>/<backupId>/; the manifest object is written last, so a backup
 * counts as stored only when all its files are.
 */
export interface PgStoreRecord {
  /** s3://<bucket>/<keyPrefix> */
  url: string;
  bucket: string;
  /** <prefix><cluster>/<backupId>/ */
  keyPrefix: string;
  uploadedAt: string;
  serverSideEncryption: string | null;
  objects: StoredObject[];
}

export interface PgBackupUploadResult {
  backupId: string;
  url: string;
  objects: StoredObject[];
  /** Files uploaded by this call, and files found already stored with the manifest's size and SHA-256 (a resumed run). */
  uploaded: string[];
  found: string[];
  /** Multipart uploads an earlier, interrupted attempt left unfinished, aborted before starting. */
  abortedUploads: number;
  /** Object versions of these keys that did not hold the manifest's bytes, deleted. */
  prunedVersions: number;
  bytesUploaded: number;
  durationMs: number;
  detail: string;
}

/** A backup downloaded from the store onto the backup host (a drill or a restore of a backup the host no longer has). */
export interface PgStoreFetchResult {
  backupId: string;
  url: string;
  files: number;
  bytes: number;
  durationMs: number;
  detail: string;
}

/** drill.json: written by a drill that proved the backup restores. */
export interface PgDrillRecord {
  backupId: string;
  provenAt: string;
  workflowId: string;
  /** Time from the start of the restore to a server answering queries. */
  rtoSeconds: number;
  /** The backup's age when it was proven (provenAt - manifest.finishedAt). */
  rpoSeconds: number;
  rowCounts: Record<string, number>;
  queries: { sql: string; ok: boolean; result: string }[];
}

export interface PgBackupCreateInput {
  cluster: string;
  backupId: string;
  /** The database node pg_basebackup copies from (the workflow picks a healthy standby, else the primary). */
  source: string;
  sourceRole: 'primary' | 'standby';
  timeoutSeconds?: number;
}

export interface PgBackupCreateResult {
  backupId: string;
  dir: string;
  manifest: PgBackupManifest;
  /** false: the complete backup was already there (a resumed run). */
  created: boolean;
  durationMs: number;
  detail: string;
}

export interface PgBackupEntry {
  backupId: string;
  dir: string;
  /** switchyard-manifest.json present and parsed. */
  complete: boolean;
  manifest: PgBackupManifest | null;
  drill: PgDrillRecord | null;
  /** Directory modification time (for incomplete ones). */
  modifiedAt: string | null;
  /** Where it is: on the backup host, in the store, or both (absent: the host only, as listed before stores existed). */
  location?: ('host' | 'store')[];
  /** Its offsite copy, when it is in the store. */
  store?: PgStoreRecord | null;
}

export interface PgBackupVerifyResult {
  backupId: string;
  ok: boolean;
  checked: number;
  /** Files whose size or SHA-256 differ, are missing, or are not in the manifest. */
  problems: { file: string; problem: 'missing' | 'size' | 'sha256' | 'unlisted'; expected?: string; actual?: string }[];
  detail: string;
}

export interface PgBackupDeleteResult {
  backupId: string;
  dir: string;
  deleted: boolean;
  /** Not deleted: a drill or a restore holds the backup's lock (it is reading it right now). */
  busy?: boolean;
  /** Object versions deleted from the store (0 when it had none; absent without a store). */
  storeDeleted?: number;
  detail: string;
}

export interface PgDrillInput {
  cluster: string;
  backupId: string;
  workflowId: string;
  /** Bound on the scratch copy's start, WAL replay included (pg_ctl start -w -t; default 600). */
  startTimeoutSeconds?: number;
  /** Point-in-time: replay the WAL archive (backup.archive) up to this ISO time, then promote; the backup must have finished before it. */
  targetTime?: string;
}

/** Where a point-in-time drill or restore stopped replaying. */
export interface PitrReached {
  targetTime: string;
  /** Commit time of the last transaction replayed (pg_last_xact_replay_timestamp). */
  lastReplayAt: string | null;
  lsn: string | null;
  timeline: number | null;
}

export interface PgDrillResult {
  backupId: string;
  ok: boolean;
  /** Set when !ok: what failed (manifest check, extraction, start, a query), in words a person can act on. */
  failure: string | null;
  verify: PgBackupVerifyResult;
  record: PgDrillRecord | null;
  scratchDir: string;
  scratchPort: number;
  /** The scratch copy was stopped and removed. */
  cleanedUp: boolean;
  /** The backup host no longer had the backup: it was downloaded from the store first. */
  fetched?: PgStoreFetchResult | null;
  /** A point-in-time drill: the point it reached. */
  reached?: PitrReached | null;
  detail: string;
}

/**
 * A restore onto a database node in two steps, so a bad backup changes nothing:
 * pgRestoreStage copies the backup's files to a staging directory beside the node's data
 * directory (<dataDir>.switchyard-restore-<backupId>) and checks them against the manifest there,
 * while PostgreSQL still runs; then, with PostgreSQL stopped, pgRestoreSwap moves the data
 * directory aside (<dataDir>.switchyard-<UTC stamp>, never deleted), extracts the staged backup
 * into a fresh data directory (mode 0700) and removes the staging directory.
 */
export interface PgRestoreNodeInput {
  cluster: string;
  backupId: string;
  /** The database node whose data directory is replaced. */
  node: string;
  /**
   * Point in time (ISO): pgRestoreStage also stages the WAL archive's segments from the backup's
   * start on; pgRestoreSwap puts them beside the data and sets a targeted recovery to this time
   * (recovery.signal, recovery_target_time, promote); pgRestorePitrFinish waits for the promotion
   * and takes those settings and the segments away again.
   */
  targetTime?: string;
}

export interface PgRestorePitrFinishResult {
  backupId: string;
  node: string;
  reached: PitrReached;
  waitedMs: number;
  detail: string;
}

export interface PgRestoreStageResult {
  backupId: string;
  node: string;
  stagingDir: string;
  verify: PgBackupVerifyResult;
  bytesCopied: number;
  /** A point-in-time restore: the WAL files staged beside the backup. */
  wal?: { files: number; bytes: number };
  /** The backup host no longer had the backup: it was downloaded from the store first. */
  fetched?: PgStoreFetchResult | null;
  durationMs: number;
  detail: string;
}

export interface PgRestoreSwapResult {
  backupId: string;
  node: string;
  dataDir: string;
  /** Where the existing data directory was moved (never deleted); null when there was none. */
  movedAside: string | null;
  /** false: already swapped by an earlier attempt (the staging dir is gone and the data dir holds this backup). */
  changed: boolean;
  durationMs: number;
  detail: string;
}

export interface PgRestoreDiscardResult {
  backupId: string;
  node: string;
  stagingDir: string;
  /** false: nothing was staged there. */
  removed: boolean;
  detail: string;
}

/** The backup activities as the workflows call them (implemented in activities/backup/: ebs.ts, pg-catalog.ts, pg-create.ts, pg-drill.ts, pg-restore.ts). */
export interface BackupActivities {
  ebsSnapshotCreate(input: EbsSnapshotCreateInput): Promise<EbsSnapshotCreateResult>;
  ebsSnapshotWait(input: EbsSnapshotWaitInput): Promise<EbsSnapshotWaitResult>;
  /** `region`: a copy region's backups (backup.ebs.copyTo); default the cluster's ec2.region. */
  ebsBackupsList(input: { cluster: string; region?: string }): Promise<EbsBackupEntry[]>;
  ebsSnapshotsDelete(input: { cluster: string; backupId: string; region?: string }): Promise<EbsDeleteResult>;
  /** Copy every snapshot of the backup into a copy region, tagged with where it came from; finds copies already made. */
  ebsSnapshotCopy(input: EbsSnapshotCopyInput): Promise<EbsSnapshotCopyResult>;
  ebsCopyWait(input: EbsCopyWaitInput): Promise<EbsCopyWaitResult>;
  ebsRestorePlan(input: { cluster: string; backupId: string; region?: string }): Promise<EbsRestorePlan>;
  ebsTerminateInstance(input: { cluster: string; instanceId: string; region?: string }): Promise<EbsTerminateResult>;
  ebsRestoreInstance(input: EbsRestoreInstanceInput): Promise<EbsRestoreInstanceResult>;
  pgBackupCreate(input: PgBackupCreateInput): Promise<PgBackupCreateResult>;
  pgBackupList(input: { cluster: string }): Promise<PgBackupEntry[]>;
  pgBackupVerify(input: { cluster: string; backupId: string }): Promise<PgBackupVerifyResult>;
  pgBackupDelete(input: { cluster: string; backupId: string }): Promise<PgBackupDeleteResult>;
  /** Copy a complete base backup from the backup host to the store (backup.store), manifest object last. */
  pgBackupUpload(input: { cluster: string; backupId: string }): Promise<PgBackupUploadResult>;
  pgDrill(input: PgDrillInput): Promise<PgDrillResult>;
  pgRestoreStage(input: PgRestoreNodeInput): Promise<PgRestoreStageResult>;
  pgRestoreSwap(input: PgRestoreNodeInput): Promise<PgRestoreSwapResult>;
  /** After a point-in-time restore's start: wait until it replayed to the target and promoted; remove the recovery settings and staged WAL. */
  pgRestorePitrFinish(input: PgRestoreNodeInput & { targetTime: string }): Promise<PgRestorePitrFinishResult>;
  /** Remove a staged copy that will not be swapped in (a restore rejected at replace-data): only the staging directory. */
  pgRestoreDiscard(input: PgRestoreNodeInput): Promise<PgRestoreDiscardResult>;
}
