/**
 * What the offsite store holds of a cluster's base backups, as catalog entries: listing them
 * (manifest objects), merging that with the backup host's list, reading one manifest object, and
 * deleting every object version of a backup.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { PgBackupEntry, PgBackupManifest } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { errorMessage, heartbeat } from '../activity-context';
import { DRILL_FILE, MANIFEST_FILE } from './files';
import { parseDrillRecord, parseSwitchyardManifest, sortNewestFirst } from './manifest';
import { abortUploads, clusterPrefix, deleteVersions, getSmall, listKeys, listVersions, type Store } from './store-client';

/** The store's copy of a backup's manifest; null when the store has none (not uploaded, or not completely). */
export async function storedManifest(store: Store, cluster: string, backupId: string): Promise<PgBackupManifest | null> {
  const key = `${store.keyPrefix(cluster, backupId)}${MANIFEST_FILE}`;
  const body = await getSmall(store, key);
  if (!body) return null;
  try {
    return parseSwitchyardManifest(body.toString('utf8'), { cluster, backupId });
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${store.url(key)} is not a usable manifest: ${errorMessage(err)}`, Errors.BackupCorrupt);
  }
}

/**
 * Every backup the store holds for the cluster (complete: its manifest object exists), newest
 * first. A backup the host has complete (`onHost`) is not downloaded again: its manifest object's
 * presence is enough (the host's manifest is the same one), so a catalog read costs one listing
 * plus the backups only the store has.
 */
export async function listStored(store: Store, cluster: string, onHost: ReadonlyMap<string, PgBackupEntry> = new Map()): Promise<PgBackupEntry[]> {
  const prefix = clusterPrefix(store.cfg, cluster);
  const keys = await listKeys(store, prefix);
  const ids = new Map<string, Set<string>>();
  for (const k of keys) {
    const rest = k.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) continue;
    const id = rest.slice(0, slash);
    if (!ids.has(id)) ids.set(id, new Set());
    ids.get(id)?.add(rest.slice(slash + 1));
  }
  const out: PgBackupEntry[] = [];
  for (const [id, names] of ids) {
    const url = store.url(`${prefix}${id}/`);
    let manifest: PgBackupManifest | null = null;
    const local = onHost.get(id);
    if (names.has(MANIFEST_FILE) && local?.complete && local.manifest) {
      out.push({ ...local, dir: url, location: ['store'], store: local.store ?? null });
      continue;
    }
    if (names.has(MANIFEST_FILE)) {
      try {
        manifest = await storedManifest(store, cluster, id);
      } catch {
        manifest = null; // listed as incomplete; a drill of it says why
      }
    }
    const drillText = names.has(DRILL_FILE) ? await getSmall(store, `${prefix}${id}/${DRILL_FILE}`) : null;
    out.push({
      backupId: id,
      dir: url,
      complete: manifest !== null,
      manifest,
      drill: drillText ? parseDrillRecord(drillText.toString('utf8'), id) : null,
      modifiedAt: null,
      location: ['store'],
      store: manifest?.store ?? null,
    });
    heartbeat();
  }
  return sortNewestFirst(out);
}

/** The host's list and the store's, one entry per backup id, each saying where it is. */
export function mergeCatalogs(host: PgBackupEntry[], stored: PgBackupEntry[]): PgBackupEntry[] {
  const byId = new Map<string, PgBackupEntry>();
  for (const h of host) byId.set(h.backupId, { ...h, location: ['host'], store: h.store ?? null });
  for (const s of stored) {
    const h = byId.get(s.backupId);
    if (!h) byId.set(s.backupId, s);
    else if (s.complete) {
      byId.set(s.backupId, {
        ...h,
        location: ['host', 'store'],
        store: s.store ?? h.store ?? null,
        complete: h.complete || s.complete,
        manifest: h.manifest ?? s.manifest,
        drill: newer(h.drill, s.drill),
      });
    }
  }
  return sortNewestFirst([...byId.values()]);
}

function newer<T extends { provenAt: string }>(a: T | null, b: T | null): T | null {
  if (!a) return b;
  if (!b) return a;
  return Date.parse(b.provenAt) > Date.parse(a.provenAt) ? b : a;
}

/** Every object version and unfinished upload of one backup deleted from the store, its manifest first (so it stops counting at once). */
export async function deleteStored(store: Store, cluster: string, backupId: string): Promise<number> {
  const keyPrefix = store.keyPrefix(cluster, backupId);
  const versions = await listVersions(store, keyPrefix);
  const manifestKey = `${keyPrefix}${MANIFEST_FILE}`;
  let n = await deleteVersions(
    store,
    versions.filter((v) => v.key === manifestKey),
  );
  n += await deleteVersions(
    store,
    versions.filter((v) => v.key !== manifestKey),
  );
  await abortUploads(store, keyPrefix);
  return n;
}
