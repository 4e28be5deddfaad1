/**
 * The files that describe a base backup, parsed and checked field by field (pure): its
 * switchyard-manifest.json (with the store's record of its objects), its drill.json, and the
 * catalog's order. Shared by the backup host's catalog (pg-catalog.ts) and the store's
 * (store-catalog.ts).
 */
import { type PgBackupEntry, type PgBackupFile, type PgBackupManifest, type PgDrillRecord, type PgStoreRecord, type StoredObject } from '../../contract/backup';
import { LSN_RE } from '../../contract/lsn';
import { errorMessage } from '../activity-context';
import { MANIFEST_FILE } from './files';

export const MANIFEST_FORMAT = 'switchyard-pg-backup/1';

function isIsoTime(v: unknown): v is string {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v));
}

/**
 * switchyard-manifest.json, checked field by field (and that it describes this cluster and
 * backup id). Throws with the reason.
 */
export function parseSwitchyardManifest(text: string, expect?: { cluster: string; backupId: string }): PgBackupManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${MANIFEST_FILE} is not JSON: ${errorMessage(err)}`);
  }
  const m = doc as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error(`${MANIFEST_FILE} is not a JSON object`);
  const bad = (field: string, want: string) => new Error(`${MANIFEST_FILE}: "${field}" should be ${want}, got ${JSON.stringify(m[field])?.slice(0, 100)}`);
  if (m.format !== MANIFEST_FORMAT) throw bad('format', JSON.stringify(MANIFEST_FORMAT));
  for (const k of ['cluster', 'backupId', 'sourceNode', 'pgVersion'] as const) if (typeof m[k] !== 'string' || m[k] === '') throw bad(k, 'a non-empty string');
  if (m.sourceRole !== 'primary' && m.sourceRole !== 'standby') throw bad('sourceRole', '"primary" or "standby"');
  for (const k of ['startedAt', 'finishedAt'] as const) if (!isIsoTime(m[k])) throw bad(k, 'an ISO time');
  for (const k of ['startLsn', 'endLsn'] as const) if (typeof m[k] !== 'string' || !LSN_RE.test(m[k] as string)) throw bad(k, 'an LSN');
  for (const k of ['timeline', 'pgMajor', 'totalBytes'] as const)
    if (typeof m[k] !== 'number' || !Number.isInteger(m[k]) || (m[k] as number) < 0) throw bad(k, 'a whole number');
  if (m.systemIdentifier !== null && typeof m.systemIdentifier !== 'string') throw bad('systemIdentifier', 'a string or null');
  if (m.databaseBytes !== null && (typeof m.databaseBytes !== 'number' || m.databaseBytes < 0)) throw bad('databaseBytes', 'a number or null');
  if (!Array.isArray(m.files) || m.files.length === 0) throw bad('files', 'a non-empty list');
  const files: PgBackupFile[] = m.files.map((f: unknown, i: number) => {
    const x = f as Record<string, unknown>;
    if (!x || typeof x.name !== 'string' || x.name === '' || x.name.includes('/') || x.name === '.' || x.name === '..')
      throw new Error(`${MANIFEST_FILE}: files[${i}].name is not a file name`);
    if (typeof x.bytes !== 'number' || !Number.isInteger(x.bytes) || x.bytes < 0) throw new Error(`${MANIFEST_FILE}: files[${i}].bytes is not a size`);
    if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(x.sha256)) throw new Error(`${MANIFEST_FILE}: files[${i}].sha256 is not a SHA-256`);
    return { name: x.name, bytes: x.bytes, sha256: x.sha256 };
  });
  if (expect && (m.cluster !== expect.cluster || m.backupId !== expect.backupId)) {
    throw new Error(
      `${MANIFEST_FILE} describes backup ${JSON.stringify(m.backupId)} of cluster ${JSON.stringify(m.cluster)}, not ${expect.backupId} of ${expect.cluster}`,
    );
  }
  const store = m.store === undefined ? undefined : parseStoreRecord(m.store);
  return {
    format: MANIFEST_FORMAT,
    cluster: m.cluster as string,
    backupId: m.backupId as string,
    sourceNode: m.sourceNode as string,
    sourceRole: m.sourceRole,
    startedAt: m.startedAt as string,
    finishedAt: m.finishedAt as string,
    startLsn: m.startLsn as string,
    endLsn: m.endLsn as string,
    timeline: m.timeline as number,
    pgVersion: m.pgVersion as string,
    pgMajor: m.pgMajor as number,
    systemIdentifier: (m.systemIdentifier as string | null) ?? null,
    files,
    totalBytes: m.totalBytes as number,
    databaseBytes: (m.databaseBytes as number | null) ?? null,
    ...(store ? { store } : {}),
  };
}

/** The `store` field of a manifest (and switchyard-store.json), checked field by field. Throws with the reason. */
export function parseStoreRecord(v: unknown): PgStoreRecord {
  const r = v as Record<string, unknown>;
  const bad = (field: string) => new Error(`${MANIFEST_FILE}: store.${field} is missing or malformed`);
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw bad('(the record)');
  for (const k of ['url', 'bucket', 'keyPrefix'] as const) if (typeof r[k] !== 'string' || r[k] === '') throw bad(k);
  if (!isIsoTime(r.uploadedAt)) throw bad('uploadedAt');
  if (r.serverSideEncryption !== null && typeof r.serverSideEncryption !== 'string') throw bad('serverSideEncryption');
  if (!Array.isArray(r.objects)) throw bad('objects');
  const objects: StoredObject[] = r.objects.map((o: unknown, i: number) => {
    const x = o as Record<string, unknown>;
    if (!x || typeof x.name !== 'string' || typeof x.key !== 'string' || !(x.key as string).startsWith(r.keyPrefix as string)) throw bad(`objects[${i}].key`);
    if (typeof x.bytes !== 'number' || !Number.isInteger(x.bytes) || x.bytes < 0) throw bad(`objects[${i}].bytes`);
    if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(x.sha256)) throw bad(`objects[${i}].sha256`);
    if (x.versionId !== null && typeof x.versionId !== 'string') throw bad(`objects[${i}].versionId`);
    return { name: x.name, key: x.key as string, bytes: x.bytes, sha256: x.sha256, versionId: (x.versionId as string | null) ?? null };
  });
  return {
    url: r.url as string,
    bucket: r.bucket as string,
    keyPrefix: r.keyPrefix as string,
    uploadedAt: r.uploadedAt as string,
    serverSideEncryption: (r.serverSideEncryption as string | null) ?? null,
    objects,
  };
}

/** drill.json, or null when it is not a drill record of this backup. */
export function parseDrillRecord(text: string, backupId?: string): PgDrillRecord | null {
  try {
    const d = JSON.parse(text) as Record<string, unknown>;
    if (!d || typeof d !== 'object' || typeof d.backupId !== 'string' || !isIsoTime(d.provenAt)) return null;
    if (typeof d.rtoSeconds !== 'number' || typeof d.rpoSeconds !== 'number') return null;
    if (backupId !== undefined && d.backupId !== backupId) return null;
    return {
      backupId: d.backupId,
      provenAt: d.provenAt,
      workflowId: typeof d.workflowId === 'string' ? d.workflowId : '',
      rtoSeconds: d.rtoSeconds,
      rpoSeconds: d.rpoSeconds,
      rowCounts: d.rowCounts && typeof d.rowCounts === 'object' && !Array.isArray(d.rowCounts) ? (d.rowCounts as Record<string, number>) : {},
      queries: Array.isArray(d.queries) ? (d.queries as PgDrillRecord['queries']) : [],
    };
  } catch {
    return null;
  }
}

/** Newest first: by the manifest's finish time when complete, else the directory's mtime; then by id. */
export function sortNewestFirst(entries: PgBackupEntry[]): PgBackupEntry[] {
  const when = (e: PgBackupEntry) => Date.parse(e.manifest?.finishedAt ?? e.modifiedAt ?? '') || 0;
  return [...entries].sort((a, b) => when(b) - when(a) || (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0));
}
