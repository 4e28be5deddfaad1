/**
 * Continuous WAL archiving for point-in-time recovery (topology `backup.archive`), as the
 * activities take and return it: pg_receivewal on the backup host, streaming from the primary
 * through its own replication slot into <backup.root>/<cluster>/.wal/ (dot-named: never taken for
 * a backup), finished segments copied to the store under <prefix><cluster>/wal/. Plain JSON for
 * workflow history: no secret belongs here.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

/** The WAL archive directory of a cluster inside backup.root (a dot name, so backup listings skip it). */
export const WAL_DIR_NAME = '.wal';
/** application_name of the archiver's replication connection (pg_stat_replication). */
export const ARCHIVE_APPLICATION_NAME = 'switchyard-archive';

export interface WalArchiveEnsureInput {
  cluster: string;
  /** The primary to stream from: the archiver is started, or repointed here if it follows another node. */
  node: string;
}

export interface WalArchiveEnsureResult {
  node: string;
  pid: number | null;
  /** running: already streaming from `node`; started: none was running; repointed: it followed another node. */
  action: 'running' | 'started' | 'repointed';
  /** The node it followed before (repointed). */
  previous: string | null;
  /** Archive slots dropped on nodes that are no longer the primary (they would hold WAL there forever). */
  droppedSlots: string[];
  detail: string;
}

export interface WalArchiveStatus {
  cluster: string;
  /** A pg_receivewal of this archive is alive on the backup host. */
  running: boolean;
  pid: number | null;
  /** The node it streams from (recorded when it was started). */
  source: string | null;
  /** The source shows the archiver's connection in pg_stat_replication. */
  streaming: boolean;
  /** The source's current WAL position and the archive's flushed one. */
  primaryLsn: string | null;
  flushLsn: string | null;
  /** How far the archive is behind the primary: the RPO of a point-in-time restore now. null: cannot be read (unknown, never "fine"). */
  lagBytes: number | null;
  lagSeconds: number | null;
  /** Newest segment in the archive (finished or .partial) and how many finished ones there are. */
  newest: string | null;
  segments: number;
  /** Why a figure is unknown, or what the archiver last logged when it is not streaming. */
  problems: string[];
  detail: string;
}

export interface WalArchiveUploadResult {
  /** Finished segments and history files copied to the store by this call. */
  uploaded: string[];
  /** Files the store already had. */
  stored: number;
  bytes: number;
  detail: string;
}

export interface WalArchivePruneInput {
  cluster: string;
  /** The WAL the oldest kept base backup needs starts here; null: keep everything (no complete backup). */
  keepFrom: { timeline: number; lsn: string } | null;
  dryRun?: boolean;
}

export interface WalArchivePruneResult {
  /** Segment files removed (on the backup host and in the store). */
  deleted: string[];
  storeDeleted: number;
  kept: number;
  detail: string;
}

export interface WalArchiveActivities {
  walArchiveEnsure(input: WalArchiveEnsureInput): Promise<WalArchiveEnsureResult>;
  walArchiveStatus(input: { cluster: string }): Promise<WalArchiveStatus>;
  /** Stop the archiver (the slot stays, so nothing is lost before it starts again). */
  walArchiveStop(input: { cluster: string }): Promise<{ stopped: boolean; detail: string }>;
  walArchiveUpload(input: { cluster: string }): Promise<WalArchiveUploadResult>;
  walArchivePrune(input: WalArchivePruneInput): Promise<WalArchivePruneResult>;
}

/** "000000010000000A000000FF" → { timeline: 1, segno: 0xA * 0x100 + 0xFF } for 16 MiB segments; null for other names. */
export function parseSegmentName(name: string): { timeline: number; segno: number } | null {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/.exec(name);
  if (!m) return null;
  return { timeline: parseInt(m[1], 16), segno: parseInt(m[2], 16) * 0x100 + parseInt(m[3], 16) };
}

/** The 16 MiB segment number holding an LSN ("0/3000028" → 3). */
export function segnoOfLsn(lsn: string): number {
  const [hi, lo] = lsn.split('/').map((x) => parseInt(x, 16));
  return hi * 0x100 + Math.floor(lo / 0x1000000);
}

/**
 * The segments retention may delete: every segment (any timeline) whose number is below the one
 * the oldest kept backup starts in. History files and anything not a segment name are kept.
 */
export function segmentsBefore(names: readonly string[], keepFrom: { lsn: string }): string[] {
  const first = segnoOfLsn(keepFrom.lsn);
  return names.filter((n) => {
    const s = parseSegmentName(n);
    return s !== null && s.segno < first;
  });
}

/** The walArchive workflow of a cluster: one per cluster. */
export function walArchiveWorkflowId(cluster: string): string {
  return `wal-archive-${cluster}`;
}

/** What the walArchive workflow keeps (its `status` query, carried across continue-as-new). */
export interface WalArchiveState {
  /** The node the archiver follows, as last ensured. */
  following: string | null;
  /** Every start and repoint, newest last (the last 20). */
  events: { at: string; action: WalArchiveEnsureResult['action']; node: string; previous: string | null; detail: string }[];
  rounds: number;
  uploaded: number;
  /** The last round's problem, if it had one (no single primary, an activity that failed). */
  problem: string | null;
}

export const walArchiveStopSignal = defineSignal<[{ by?: string }]>('stop');
export const walArchiveStatusQuery = defineQuery<WalArchiveState>('status');
