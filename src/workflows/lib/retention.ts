/**
 * Backup retention as a pure function of the catalog (what is on the backup server and in EC2):
 * keep the last N complete backups and every backup younger than the maximum age, and never the
 * newest backup a drill proved restorable. A backup id is one unit: its base backup and its
 * snapshots are kept or deleted together. Deterministic, no I/O: the workflow, the CLI's dry run
 * and the unit tests judge alike.
 */
import type { EbsBackupEntry, PgBackupEntry } from '../../contract/backup';

export interface CatalogEntry {
  backupId: string;
  /** When the backup was made (manifest start, earliest snapshot, or the directory's time). */
  createdAt: string | null;
  /** A complete base backup (its manifest is there). */
  pg: boolean;
  /** A base backup directory without a manifest (an interrupted run's leftover). */
  pgIncomplete: boolean;
  snapshots: string[];
  /** When a drill proved it restorable, or null. */
  provenAt: string | null;
  pgBytes: number | null;
}

export interface RetentionPolicy {
  keepLast: number;
  maxAgeSeconds: number;
}

export interface RetentionDecision {
  backupId: string;
  createdAt: string | null;
  action: 'keep' | 'delete';
  why: string;
  pg: boolean;
  snapshots: string[];
}

/** One catalog from both sources, newest first (unknown dates last). */
export function catalog(pg: PgBackupEntry[], ebs: EbsBackupEntry[]): CatalogEntry[] {
  const by = new Map<string, CatalogEntry>();
  const entry = (id: string): CatalogEntry => {
    let e = by.get(id);
    if (!e) {
      e = { backupId: id, createdAt: null, pg: false, pgIncomplete: false, snapshots: [], provenAt: null, pgBytes: null };
      by.set(id, e);
    }
    return e;
  };
  const earliest = (a: string | null, b: string | null) => (a === null ? b : b === null ? a : Date.parse(a) <= Date.parse(b) ? a : b);
  for (const p of pg) {
    const e = entry(p.backupId);
    e.pg = p.complete;
    e.pgIncomplete = !p.complete;
    e.createdAt = earliest(e.createdAt, p.manifest?.startedAt ?? p.modifiedAt);
    e.provenAt = p.drill?.provenAt ?? null;
    e.pgBytes = p.manifest?.totalBytes ?? null;
  }
  for (const s of ebs) {
    const e = entry(s.backupId);
    e.snapshots = s.snapshots.map((x) => x.snapshotId);
    e.createdAt = earliest(e.createdAt, s.createdAt);
  }
  return [...by.values()].sort(
    (a, b) => (b.createdAt ? Date.parse(b.createdAt) : -Infinity) - (a.createdAt ? Date.parse(a.createdAt) : -Infinity) || (a.backupId < b.backupId ? 1 : -1),
  );
}

export function planRetention(entries: CatalogEntry[], policy: RetentionPolicy, nowMs: number, protect: readonly string[] = []): RetentionDecision[] {
  const sorted = [...entries].sort((a, b) => (b.createdAt ? Date.parse(b.createdAt) : -Infinity) - (a.createdAt ? Date.parse(a.createdAt) : -Infinity));
  const newestProven = sorted
    .filter((e) => e.provenAt !== null)
    .reduce<CatalogEntry | null>((best, e) => (best === null || Date.parse(e.createdAt ?? '0') > Date.parse(best.createdAt ?? '0') ? e : best), null);
  // Only complete backups count towards "the last N": an interrupted leftover is not a backup.
  const usable = sorted.filter((e) => e.pg || e.snapshots.length > 0);
  const lastN = new Set(usable.slice(0, policy.keepLast).map((e) => e.backupId));
  return sorted.map((e) => {
    const ageSeconds = e.createdAt ? Math.max(0, (nowMs - Date.parse(e.createdAt)) / 1000) : null;
    const base = { backupId: e.backupId, createdAt: e.createdAt, pg: e.pg || e.pgIncomplete, snapshots: e.snapshots };
    const age = ageSeconds === null ? 'of unknown age' : `${formatAge(ageSeconds)} old`;
    if (protect.includes(e.backupId)) return { ...base, action: 'keep', why: 'made by this run' };
    if (newestProven && e.backupId === newestProven.backupId)
      return { ...base, action: 'keep', why: `the newest backup a drill proved restorable (${e.provenAt})` };
    if (lastN.has(e.backupId)) return { ...base, action: 'keep', why: `one of the last ${policy.keepLast}` };
    if (ageSeconds === null) return { ...base, action: 'keep', why: 'its age is unknown: kept for a person to look at' };
    if (ageSeconds < policy.maxAgeSeconds) return { ...base, action: 'keep', why: `${age}, younger than the maximum age ${formatAge(policy.maxAgeSeconds)}` };
    const what = e.pgIncomplete && !e.pg ? 'an incomplete base backup' : `not among the last ${policy.keepLast}`;
    return { ...base, action: 'delete', why: `${what}, ${age} (maximum age ${formatAge(policy.maxAgeSeconds)})` };
  });
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${Math.round((seconds / 3600) * 10) / 10} h`;
  return `${Math.round((seconds / 86400) * 10) / 10} d`;
}

/** A backup id from a workflow id: schedules name each run "<schedule's workflow id>-<time>", stable across retries. */
export function backupIdFromWorkflowId(workflowId: string): string {
  const cleaned = workflowId.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (cleaned || 'backup').slice(-128).replace(/^[^A-Za-z0-9]+/, '') || 'backup';
}
