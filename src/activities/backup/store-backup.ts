/**
 * Base backups and the offsite store: uploading a complete backup from the backup host
 * (pgBackupUpload) and downloading a backup the backup host no longer has (for a drill or a
 * restore). What the store holds is listed and deleted in store-catalog.ts.
 *
 * The bytes stream through the worker: `cat` on the backup host over SSH into a multipart upload
 * (and a download into `cat >` there). The worker holds the store's credentials (resolved from
 * their references, never written on a host or into a command line), the backup host needs
 * nothing but cat, and every byte is hashed on the way against the manifest's SHA-256 (computed on
 * the host when the backup was made). The cost is that the backup crosses the worker's network
 * twice; the worker holds at most partSizeMiB × concurrency of it in memory.
 *
 * A resumed upload (the worker killed mid-way) aborts the multipart uploads the killed attempt
 * left, keeps the files already stored with the manifest's size and SHA-256, and uploads the rest;
 * the manifest object goes last, so a backup counts as stored only once every file is.
 */
import { posix } from 'node:path';
import type { Transform } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import type { PgBackupUploadResult, PgStoreFetchResult, PgStoreRecord, StoredObject } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { formatBytes } from '../../contract/format';
import { cancellationSignal, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { execArgv, mustExec, throwIfCancelled, type OpenSession } from '../ssh/exec';
import { commandLine } from '../ssh/quote';
import { shellScript } from '../ssh/argv';
import { requireFreeSpace } from '../ssh/free-space';
import { holdHostLock, type HostLock } from '../ssh/host-lock';
import { DRILL_FILE, MANIFEST_FILE, STORE_FILE } from './files';
import { backupConfig, backupPaths, onBackupHost, readManifest, readText, writeText, type BackupPaths } from './pg-catalog';
import { RECEIVE_SH } from './stream-copy';
import { storedManifest } from './store-catalog';
import {
  abortUploads,
  ChecksumMismatch,
  checkedStream,
  deleteVersions,
  getStream,
  headObject,
  listVersions,
  putSmall,
  storeConfig,
  uploadStream,
  withStore,
  type Store,
} from './store-client';

/** How long one file's transfer may take. */
const TRANSFER_TIMEOUT_SECONDS = 6 * 3600;
/** How long a second fetch of the same backup waits for the first. */
const FETCH_LOCK_WAIT_SECONDS = 3600;

/** The record of a backup's objects (the manifest object's `store` field, switchyard-store.json). */
function storeRecord(store: Store, keyPrefix: string, objects: StoredObject[], uploadedAt: string): PgStoreRecord {
  return {
    url: store.url(keyPrefix),
    bucket: store.bucket,
    keyPrefix,
    uploadedAt,
    serverSideEncryption: store.cfg.serverSideEncryption ?? null,
    objects,
  };
}

/** `cat` of a file on the host into an upload, hashed on the way and refused unless it is the manifest's bytes. */
export async function uploadFile(
  open: OpenSession,
  store: Store,
  path: string,
  key: string,
  f: { name: string; bytes: number; sha256: string },
  beat: (n: number) => void,
) {
  if (!open.session.execStream) throw new Error(`the SSH session to ${open.name} cannot stream files (no execStream): uploading needs it`);
  const checked = checkedStream(f, `${path} on ${open.name}`);
  const stop = new AbortController();
  const cancelled = cancellationSignal();
  const signal = cancelled ? AbortSignal.any([cancelled, stop.signal]) : stop.signal;
  const reading = open.session.execStream(commandLine(['cat', '--', path]), { timeoutMs: TRANSFER_TIMEOUT_SECONDS * 1000, signal, stdout: checked });
  try {
    const up = await uploadStream(store, key, checked, f.sha256, beat);
    const r = await reading;
    if (r.code !== 0) throw new Error(`reading ${path} on ${open.name} (cat) exited ${r.code ?? r.signal ?? '?'}: ${r.stderr.trim().slice(-300)}`);
    return up;
  } catch (err) {
    stop.abort();
    const r = await reading.catch(() => null);
    throwIfCancelled();
    if (err instanceof ChecksumMismatch)
      throw new Error(
        `the file read for upload is not the manifest's: ${err.message}${r && r.code !== 0 ? ` (cat exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(-200)})` : ''}`,
      );
    throw err;
  } finally {
    checked.destroy();
  }
}

/**
 * A stored object into `cat > path` on the host, hashed on the way; ChecksumMismatch when it is not the manifest's bytes.
 * `through`: applied after the check, before the host (a file set's decryption); its error is thrown.
 */
export async function downloadFile(
  open: OpenSession,
  store: Store,
  key: string,
  path: string,
  f: { name: string; bytes: number; sha256: string },
  through?: Transform,
): Promise<void> {
  if (!open.session.execStream) throw new Error(`the SSH session to ${open.name} cannot stream files (no execStream): downloading needs it`);
  const got = await getStream(store, key);
  if (!got) throw new ChecksumMismatch(`${f.name}: ${store.url(key)} is missing from the store`);
  const checked = checkedStream(f, `${f.name} downloaded from ${store.url(key)}`);
  let refused: Error | null = null;
  // A refusal stops the writer even when it comes before its channel is open (a small object is read whole by then).
  const stop = new AbortController();
  const cancelled = cancellationSignal();
  checked.on('error', (e) => {
    refused ??= e;
    through?.destroy(e);
    stop.abort();
  });
  through?.on('error', (e) => {
    refused ??= e;
    stop.abort();
  });
  got.body.on('error', (e) => checked.destroy(e));
  got.body.pipe(checked);
  if (through) checked.pipe(through);
  const beat = setInterval(() => heartbeat({ downloading: f.name, bytes: checked.bytes() }), 2_000);
  try {
    const r = await open.session.execStream(commandLine(shellScript(RECEIVE_SH, path)), {
      timeoutMs: TRANSFER_TIMEOUT_SECONDS * 1000,
      signal: cancelled ? AbortSignal.any([cancelled, stop.signal]) : stop.signal,
      stdin: through ?? checked,
    });
    throwIfCancelled();
    if (refused) throw refused;
    if (r.code !== 0) throw new Error(`writing ${path} on ${open.name} (cat >) exited ${r.code ?? r.signal ?? '?'}: ${r.stderr.trim().slice(-300)}`);
  } finally {
    clearInterval(beat);
    got.body.destroy();
    checked.destroy();
    through?.destroy();
  }
}

/** The drill record, copied to the store beside the manifest (so a backup proven and then dropped from the host stays proven). */
export async function storeDrillRecord(rt: Runtime, call: Call, cluster: string, backupId: string, text: string): Promise<string | null> {
  if (!storeConfig(call, cluster)) return null;
  return withStore(rt, call, cluster, async (store) => {
    if (!(await headObject(store, `${store.keyPrefix(cluster, backupId)}${MANIFEST_FILE}`))) return null;
    const key = `${store.keyPrefix(cluster, backupId)}${DRILL_FILE}`;
    await putSmall(store, key, Buffer.from(text, 'utf8'));
    return store.url(key);
  });
}

/**
 * Make sure the backup is on the backup host: when its directory is gone and the cluster has a
 * store, download it from there into <dir>.fetch, every file checked against the store's manifest
 * on the way, then rename it into place. Holds the backup's fetch lock (retention skips a backup
 * whose lock is held) until the caller releases it, after taking its own hold on the manifest.
 */
export async function ensureOnHost(
  rt: Runtime,
  call: Call,
  open: OpenSession,
  cluster: string,
  backupId: string,
  paths: BackupPaths,
): Promise<{ fetched: PgStoreFetchResult | null; lock: HostLock | null }> {
  const local = await readText(open, posix.join(paths.dir, MANIFEST_FILE));
  if (local.kind === 'file' || !storeConfig(call, cluster)) return { fetched: null, lock: null };
  if (local.kind === 'missing') return { fetched: null, lock: null }; // an incomplete directory: readManifest says so
  const lockPath = paths.fetchLock;
  await mustExec(open, ['mkdir', '-p', '--', paths.clusterDir], `creating ${paths.clusterDir}`);
  await mustExec(open, ['touch', '--', lockPath], `creating ${lockPath}`);
  const lock = await holdHostLock(open, lockPath, FETCH_LOCK_WAIT_SECONDS, `downloading backup ${backupId}`);
  try {
    // Another run may have downloaded it while this one waited.
    if ((await readText(open, posix.join(paths.dir, MANIFEST_FILE))).kind === 'file') return { fetched: null, lock };
    const fetched = await withStore(rt, call, cluster, (store) => fetchLocked(open, store, cluster, backupId, paths));
    rt.log.info('backup downloaded from the store', { cluster, backupId, url: fetched.url, bytes: fetched.bytes });
    return { fetched, lock };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function fetchLocked(open: OpenSession, store: Store, cluster: string, backupId: string, paths: BackupPaths): Promise<PgStoreFetchResult> {
  const t0 = Date.now();
  const keyPrefix = store.keyPrefix(cluster, backupId);
  const manifest = await storedManifest(store, cluster, backupId);
  if (!manifest) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} of cluster ${cluster} does not exist: no directory ${paths.dir} on ${open.name} and no complete copy in ${store.url(keyPrefix)} ` +
        `(\`switchyard backup list ${cluster}\` shows what there is)`,
      Errors.BackupNotFound,
    );
  }
  const tmp = `${paths.dir}.fetch`;
  await mustExec(open, ['rm', '-rf', '--', tmp], `removing an earlier download ${tmp}`, 600);
  const notes = [
    await requireFreeSpace(
      open,
      paths.clusterDir,
      manifest.totalBytes,
      (f) =>
        `not enough free space on ${open.name} to download backup ${backupId} from the store: ${formatBytes(manifest.totalBytes)} plus a reserve of ` +
        `${formatBytes(f.reserveBytes)}, but ${f.dir} has ${formatBytes(f.freeBytes)} free. Nothing was downloaded.`,
    ),
  ];
  await mustExec(open, ['mkdir', '-m', '700', '--', tmp], `creating ${tmp}`);
  const byName = new Map((manifest.store?.objects ?? []).map((o) => [o.name, o.key]));
  try {
    for (const f of manifest.files) {
      const key = byName.get(f.name) ?? `${keyPrefix}${f.name}`;
      await downloadFile(open, store, key, posix.join(tmp, f.name), f);
    }
  } catch (err) {
    await execArgv(open, ['rm', '-rf', '--', tmp], 600).catch(() => undefined);
    if (err instanceof ChecksumMismatch)
      throw ApplicationFailure.nonRetryable(
        `backup ${backupId} in the store is damaged: ${err.message}. Nothing was restored from it; the other backups are untouched.`,
        Errors.BackupCorrupt,
      );
    throw err;
  }
  await writeText(open, posix.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  if (manifest.store) await writeText(open, posix.join(tmp, STORE_FILE), `${JSON.stringify(manifest.store, null, 2)}\n`);
  await mustExec(open, ['mv', '-T', '--', tmp, paths.dir], `renaming ${tmp} to ${paths.dir}`);
  const durationMs = Date.now() - t0;
  return {
    backupId,
    url: store.url(keyPrefix),
    files: manifest.files.length,
    bytes: manifest.totalBytes,
    durationMs,
    detail:
      `${paths.dir} was not on ${open.name}: downloaded ${manifest.files.length} files (${formatBytes(manifest.totalBytes)}) from ${store.url(keyPrefix)} ` +
      `in ${(durationMs / 1000).toFixed(1)} s, each matching the manifest's SHA-256; ${notes.join('; ')}`,
  };
}

export function pgBackupStoreActivities(rt: Runtime) {
  return {
    /**
     * Copy a complete base backup from the backup host to the store: every file under
     * <prefix><cluster>/<backupId>/, then the manifest object with the objects' record, then
     * switchyard-store.json on the host. Idempotent (see the file's comment).
     */
    pgBackupUpload: rt.activity(async (input: { cluster: string; backupId: string }, call): Promise<PgBackupUploadResult> => {
      const t0 = Date.now();
      const b = backupConfig(call, input.cluster);
      if (!b.store)
        throw ApplicationFailure.nonRetryable(`cluster "${input.cluster}" has no backup.store in the topology: nothing to upload to`, Errors.ConfigError);
      const paths = backupPaths(b.root, input.cluster, input.backupId);
      return onBackupHost(rt, call, input.cluster, async (open) => {
        const manifest = await readManifest(open, input.cluster, input.backupId, paths.dir);
        // Reading it: retention keeps the backup until the upload is done.
        const inUse = await holdHostLock(open, posix.join(paths.dir, MANIFEST_FILE), 600, `uploading backup ${input.backupId}`, { shared: true });
        try {
          return await withStore(rt, call, input.cluster, async (store) => {
            const keyPrefix = store.keyPrefix(input.cluster, input.backupId);
            const abortedUploads = await abortUploads(store, keyPrefix);
            const objects: StoredObject[] = [];
            const uploaded: string[] = [];
            const found: string[] = [];
            let prunedVersions = 0;
            let bytesUploaded = 0;
            for (const f of manifest.files) {
              const key = `${keyPrefix}${f.name}`;
              const head = await headObject(store, key);
              if (head && head.bytes === f.bytes && head.sha256 === f.sha256) {
                found.push(f.name);
                objects.push({ name: f.name, key, bytes: f.bytes, sha256: f.sha256, versionId: head.versionId });
                continue;
              }
              const path = posix.join(paths.dir, f.name);
              let last = 0;
              const beat = (n: number) => {
                if (Date.now() - last < 1_000) return;
                last = Date.now();
                heartbeat({ backupId: input.backupId, uploading: f.name, bytes: n, of: f.bytes });
              };
              rt.log.info('uploading to the store', { cluster: input.cluster, backupId: input.backupId, file: f.name, bytes: f.bytes, key });
              const up = await uploadFile(open, store, path, key, f, beat);
              // What S3 now holds must be what was sent (size and the recorded SHA-256).
              const after = await headObject(store, key);
              if (!after || after.bytes !== f.bytes || after.sha256 !== f.sha256)
                throw new Error(`${store.url(key)} does not hold what was uploaded (${after ? `${after.bytes} bytes` : 'no object'}, expected ${f.bytes})`);
              // A complete object was there with other bytes (versions of it would linger in a versioned bucket): not left behind.
              // (An interrupted upload leaves no version: its multipart upload never completed and was aborted above.)
              if (head && (up.versionId || after.versionId)) {
                const others = (await listVersions(store, key)).filter((v) => v.key === key && v.versionId !== (up.versionId ?? after.versionId));
                prunedVersions += await deleteVersions(store, others);
              }
              objects.push({ name: f.name, key, bytes: f.bytes, sha256: f.sha256, versionId: up.versionId ?? after.versionId });
              uploaded.push(f.name);
              bytesUploaded += f.bytes;
            }
            // The manifest object last: from now on the store holds a complete backup.
            const manifestKey = `${keyPrefix}${MANIFEST_FILE}`;
            const existing = await storedManifest(store, input.cluster, input.backupId).catch(() => null);
            const same =
              existing?.store &&
              existing.store.objects.length === objects.length &&
              existing.store.objects.every((o, i) => o.key === objects[i].key && o.sha256 === objects[i].sha256 && o.versionId === objects[i].versionId);
            const record = same && existing.store ? existing.store : storeRecord(store, keyPrefix, objects, rt.now().toISOString());
            if (!same) {
              const hadOne = (await headObject(store, manifestKey)) !== null;
              const put = await putSmall(store, manifestKey, Buffer.from(`${JSON.stringify({ ...manifest, store: record }, null, 2)}\n`, 'utf8'));
              if (hadOne && put.versionId) {
                const others = (await listVersions(store, manifestKey)).filter((v) => v.key === manifestKey && v.versionId !== put.versionId);
                prunedVersions += await deleteVersions(store, others);
              }
            }
            await writeText(open, posix.join(paths.dir, STORE_FILE), `${JSON.stringify(record, null, 2)}\n`);
            const durationMs = Date.now() - t0;
            const rate = bytesUploaded > 0 && durationMs > 0 ? `, ${formatBytes(Math.round((bytesUploaded / durationMs) * 1000))}/s` : '';
            return {
              backupId: input.backupId,
              url: record.url,
              objects,
              uploaded,
              found,
              abortedUploads,
              prunedVersions,
              bytesUploaded,
              durationMs,
              detail:
                `${record.url}: ${objects.length} files (${formatBytes(manifest.totalBytes)}), each checked against the manifest's SHA-256; ` +
                `uploaded ${uploaded.length} (${formatBytes(bytesUploaded)} in ${(durationMs / 1000).toFixed(1)} s${rate})` +
                `${found.length ? `, ${found.length} already stored by an earlier attempt` : ''}` +
                `${abortedUploads ? `; aborted ${abortedUploads} unfinished upload(s) of an interrupted attempt` : ''}` +
                `${prunedVersions ? `; removed ${prunedVersions} stale object version(s)` : ''}` +
                `${same ? '; the manifest object was already there' : ''}`,
            };
          });
        } finally {
          await inUse.release();
        }
      });
    }),
  };
}
