/**
 * backupList: every backup of a cluster as `switchyard backup list <cluster>` shows it, read-only:
 * its base backup (complete or not, where it is: the backup host, the store or both, proven by a
 * drill or not), its EBS snapshots, and its file sets (backup.files). The CLI does not reach the
 * hosts itself, so the catalog is read by the activities and returned as this run's result.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type { FileSetEntrySummary } from '../contract/backup-files';
import type { EbsBackupEntry, PgBackupEntry } from '../contract/backup';
import type { StepRecord } from '../contract/messages';
import { calls } from './lib/backup-activities';
import { fileSetCalls } from './lib/file-set-activities';
import { reads } from './lib/runbook';
import { StepLog } from './lib/steps';

export interface BackupListInput {
  cluster: string;
  requestedBy?: string;
}

export interface BackupListEntry {
  backupId: string;
  /** When it was made: the base backup's finish, else the earliest snapshot's start, else the newest file set's. */
  at: string | null;
  pg: {
    complete: boolean;
    totalBytes: number | null;
    location: ('host' | 'store')[];
    sourceNode: string | null;
    /** When a drill proved it restores; null: not proven. */
    provenAt: string | null;
  } | null;
  ebs: { node: string | null; snapshots: number } | null;
  files: FileSetEntrySummary[];
}

export interface BackupListResult {
  cluster: string;
  backups: BackupListEntry[];
  steps: StepRecord[];
}

/** One entry per backup id, newest first (pure: unit-tested). */
export function mergeBackupList(pg: readonly PgBackupEntry[], ebs: readonly EbsBackupEntry[], files: readonly FileSetEntrySummary[]): BackupListEntry[] {
  const by = new Map<string, BackupListEntry>();
  const get = (id: string) => {
    let e = by.get(id);
    if (!e) by.set(id, (e = { backupId: id, at: null, pg: null, ebs: null, files: [] }));
    return e;
  };
  for (const p of pg) {
    const e = get(p.backupId);
    e.pg = {
      complete: p.complete,
      totalBytes: p.manifest?.totalBytes ?? null,
      location: p.location ?? ['host'],
      sourceNode: p.manifest?.sourceNode ?? null,
      provenAt: p.drill?.provenAt ?? null,
    };
    e.at = p.manifest?.finishedAt ?? p.modifiedAt ?? e.at;
  }
  for (const s of ebs) {
    const e = get(s.backupId);
    e.ebs = { node: s.node, snapshots: s.snapshots.length };
    e.at ??= s.createdAt;
  }
  for (const f of files) {
    const e = get(f.backupId);
    e.files.push(f);
    if (!e.at || (!e.pg?.complete && !e.ebs && Date.parse(f.createdAt) > Date.parse(e.at))) e.at = f.createdAt;
  }
  for (const e of by.values()) e.files.sort((a, b) => (a.set < b.set ? -1 : a.set > b.set ? 1 : 0));
  return [...by.values()].sort((a, b) => (Date.parse(b.at ?? '') || 0) - (Date.parse(a.at ?? '') || 0) || (a.backupId < b.backupId ? 1 : -1));
}

export async function backupList(input: BackupListInput): Promise<BackupListResult> {
  const cluster = input && typeof input === 'object' && typeof input.cluster === 'string' ? input.cluster : '';
  if (!cluster) throw ApplicationFailure.nonRetryable('backupList input needs "cluster": the name of the cluster', 'ConfigError');
  const steps = new StepLog('backup-list', cluster);
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `backup server ${l.backup?.host ?? 'none'}`,
  );
  const cfg = layout.backup;
  if (!cfg) throw ApplicationFailure.nonRetryable(`cluster ${cluster} has no "backup" section in the topology`, 'ConfigError');
  const [pg, ebs, files] = await Promise.all([
    steps.run(
      'catalog:pg',
      () => calls.pgBackupList({ cluster }),
      (l) => `${l.length} base backups on ${cfg.host}${cfg.store ? ` and in ${cfg.store}` : ''}`,
    ),
    cfg.kinds.includes('ebs')
      ? steps.run(
          'catalog:ebs',
          () => calls.ebsBackupsList({ cluster }),
          (l) => `${l.length} snapshot backups`,
        )
      : Promise.resolve([] as EbsBackupEntry[]),
    cfg.files?.length
      ? steps.run(
          'catalog:files',
          () => fileSetCalls.fileSetList({ cluster }),
          (l) => `${l.length} file sets`,
        )
      : Promise.resolve([] as FileSetEntrySummary[]),
  ]);
  return { cluster, backups: mergeBackupList(pg, ebs, files), steps: steps.snapshot() };
}
