/**
 * File-set backups (topology `backup.files`): fileSetBackup archives one set on its host into the
 * base backup's directory on the backup host (and then the store), fileSetList finds every
 * backup's sets, fileSetPlan and fileSetRestore put a set back onto a host. The design (tar on
 * the set's host, the manifest made there, AES-256-GCM in the worker, a staged and checked
 * extraction before anything is moved) is described in file-set-parts.ts.
 *
 * Layout: <root>/<cluster>/<backupId>/files/<set>/{files.tar | files.tar.enc, files-manifest.json},
 * made in <set>.partial and renamed once the manifest is in it; in the store under
 * <prefix><cluster>/<backupId>/files/<set>/, the manifest object last. A set lives with the base
 * backup of its id, so retention and pgBackupDelete remove it with the backup.
 */
import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import {
  FILE_SET_ARCHIVE_PLAIN,
  FILE_SET_ARCHIVE_SEALED,
  FILE_SET_FORMAT,
  FILE_SET_MANIFEST,
  type FileSetBackupInput,
  type FileSetBackupResult,
  type FileSetEntry,
  type FileSetEntrySummary,
  type FileSetManifest,
  type FileSetPlan,
  type FileSetRestoreInput,
  type FileSetRestoreResult,
} from '../../contract/backup-files';
import { BACKUP_ID_RE } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { formatBytes } from '../../contract/format';
import { NAME_RE } from '../../topology/fields';
import type { FileSetConfig } from '../../topology/backup-files';
import { cancellationSignal, errorMessage, heartbeat } from '../activity-context';
import { configError } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { describeRef } from '../secrets';
import { shellScript } from '../ssh/argv';
import { execArgv, mustExec, onHost, throwIfCancelled, type OpenSession } from '../ssh/exec';
import { readTextFiles } from '../ssh/files';
import { requireFreeSpace } from '../ssh/free-space';
import { holdHostLock, type HostLock } from '../ssh/host-lock';
import { commandLine } from '../ssh/quote';
import {
  ArchiveAuthFailed,
  archiveAad,
  batches,
  checkRequestedPath,
  checkStaged,
  deriveKeys,
  differences,
  digestWith,
  DIR_ATTRS_SH,
  LIST_SH,
  listingChange,
  OpenStream,
  ownerText,
  parseFileSetKey,
  parseFileSetManifest,
  parseListing,
  parseSwap,
  SealStream,
  selectEntries,
  SWAP_SH,
  toManifestEntry,
  withinSet,
  type FileSetKeys,
  type Listing,
} from './file-set-parts';
import { MANIFEST_FILE, verifyOnHost } from './files';
import { backupConfig, backupPaths, clusterDirOf, onBackupHost, readManifest, readText, writeText } from './pg-catalog';
import { downloadFile, uploadFile } from './store-backup';
import { abortUploads, ChecksumMismatch, clusterPrefix, getSmall, headObject, listKeys, putSmall, withStore, type Store } from './store-client';
import { streamFile } from './stream-copy';

/** How long archiving or restoring one set may take. */
const TRANSFER_TIMEOUT_SECONDS = 6 * 3600;
/** Listing and hashing a set on a host. */
const LIST_TIMEOUT_SECONDS = 3600;
const STAMP_RE = /^\d{8}T\d{6}Z$/;

interface SetPaths {
  /** The base backup's directory. */
  backupDir: string;
  /** <backupDir>/files/<set> */
  dir: string;
  partial: string;
}

function setPaths(root: string, cluster: string, backupId: string, set: string): SetPaths {
  if (!NAME_RE.test(set)) throw configError(`a file set name is lowercase letters, digits, "-" or "_"; got ${JSON.stringify(set)}`);
  const backupDir = backupPaths(root, cluster, backupId).dir;
  const dir = posix.join(backupDir, 'files', set);
  return { backupDir, dir, partial: `${dir}.partial` };
}

/** The set as the topology declares it, or a ConfigError naming the sets there are. */
function setConfig(call: Call, cluster: string, set: string): FileSetConfig {
  const sets = backupConfig(call, cluster).files ?? {};
  const fs = Object.prototype.hasOwnProperty.call(sets, set) ? sets[set] : undefined;
  if (!fs)
    throw configError(
      `cluster "${cluster}" has no file set ${JSON.stringify(set)} in backup.files; known: ${
        Object.keys(sets)
          .map((s) => `"${s}"`)
          .join(', ') || 'none'
      }`,
    );
  return fs;
}

/** The set's derived keys (null when it is not encrypted). */
async function setKeys(call: Call, cluster: string, set: string, fs: FileSetConfig): Promise<{ keys: FileSetKeys; ref: string } | null> {
  if (!fs.key) return null;
  const what = `backup.files.${set}.key of cluster "${cluster}"`;
  const value = await call.secrets.get(fs.key, what);
  return { keys: deriveKeys(parseFileSetKey(value, `${what} (${describeRef(fs.key)})`)), ref: describeRef(fs.key) };
}

/** A command whose whole output is read (not cut to a tail as execArgv does), decoded once at the end. */
async function runAll(open: OpenSession, argv: readonly string[], what: string, timeoutSeconds: number): Promise<string> {
  if (!open.session.execStream) throw new Error(`the SSH session to ${open.name} cannot stream output (no execStream): ${what} needs it`);
  const r = await open.session.execStream(commandLine(argv), {
    timeoutMs: timeoutSeconds * 1000,
    signal: cancellationSignal(),
    onData: () => heartbeat({ host: open.name }),
  });
  throwIfCancelled();
  if (r.code !== 0) {
    const err = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 600);
    const msg = `${what} on ${open.name} ${r.timedOut ? `timed out after ${timeoutSeconds} s` : `exited ${r.code ?? `by signal ${r.signal ?? '?'}`}`}${err ? `: ${err}` : ''}`;
    // A file the SSH user may not read is for a person (the set's owner, or a root login), not for a retry.
    if (/Permission denied/.test(err)) throw configError(msg);
    throw new Error(msg);
  }
  return r.stdout;
}

/**
 * LIST_SH of `paths` on a host (`root`: under a staging directory, paths given relative to it;
 * `lenient`: unreadable files listed without a checksum, for what a restore is about to replace).
 */
async function listOn(open: OpenSession, paths: readonly string[], what: string, opts: { root?: string; lenient?: boolean } = {}): Promise<Listing> {
  const { root, lenient = false } = opts;
  const out = await runAll(open, shellScript(LIST_SH, lenient ? 'lenient' : 'strict', ...(root ? [root] : paths)), what, LIST_TIMEOUT_SECONDS);
  try {
    return parseListing(out, root, { lenient });
  } catch (err) {
    throw new Error(`${what} on ${open.name}: ${errorMessage(err)}`);
  }
}

/** The set's manifest on the backup host: null when the host has no such set. */
async function hostManifest(open: OpenSession, sp: SetPaths, expect: { cluster: string; backupId: string; set: string }): Promise<FileSetManifest | null> {
  const t = await readText(open, posix.join(sp.dir, FILE_SET_MANIFEST));
  if (t.kind !== 'file') return null;
  try {
    return parseFileSetManifest(t.text, expect);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(
      `file set ${expect.set} of backup ${expect.backupId} (${sp.dir} on ${open.name}) has an unusable manifest: ${errorMessage(err)}`,
      Errors.BackupCorrupt,
    );
  }
}

const storeSetPrefix = (store: Store, cluster: string, backupId: string, set: string) => `${store.keyPrefix(cluster, backupId)}files/${set}/`;

async function storedSetManifest(store: Store, cluster: string, backupId: string, set: string): Promise<FileSetManifest | null> {
  const key = `${storeSetPrefix(store, cluster, backupId, set)}${FILE_SET_MANIFEST}`;
  const body = await getSmall(store, key);
  if (!body) return null;
  try {
    return parseFileSetManifest(body.toString('utf8'), { cluster, backupId, set });
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${store.url(key)} is not a usable file set manifest: ${errorMessage(err)}`, Errors.BackupCorrupt);
  }
}

/** Upload the set's archive from the backup host, then its manifest object (last). false: the store already held both. */
async function uploadSet(rt: Runtime, open: OpenSession, store: Store, sp: SetPaths, m: FileSetManifest): Promise<{ url: string; uploaded: boolean }> {
  const prefix = storeSetPrefix(store, m.cluster, m.backupId, m.set);
  const url = store.url(prefix);
  const existing = await storedSetManifest(store, m.cluster, m.backupId, m.set).catch(() => null);
  if (existing && existing.archive.sha256 === m.archive.sha256 && existing.store) {
    const head = await headObject(store, existing.store.key);
    if (head && head.bytes === m.archive.bytes && head.sha256 === m.archive.sha256) return { url, uploaded: false };
  }
  await abortUploads(store, prefix);
  const key = `${prefix}${m.archive.name}`;
  let up: { versionId: string | null } = { versionId: null };
  const head = await headObject(store, key);
  if (!(head && head.bytes === m.archive.bytes && head.sha256 === m.archive.sha256)) {
    up = await uploadFile(open, store, posix.join(sp.dir, m.archive.name), key, m.archive, (n) =>
      heartbeat({ set: m.set, uploading: m.archive.name, bytes: n }),
    );
  }
  const after = await headObject(store, key);
  if (!after || after.bytes !== m.archive.bytes || after.sha256 !== m.archive.sha256)
    throw new Error(`${store.url(key)} does not hold what was uploaded (${after ? `${after.bytes} bytes` : 'no object'}, expected ${m.archive.bytes})`);
  const record = { url: store.url(key), key, versionId: up.versionId ?? after.versionId, uploadedAt: rt.now().toISOString() };
  await putSmall(store, `${prefix}${FILE_SET_MANIFEST}`, Buffer.from(`${JSON.stringify({ ...m, store: record }, null, 2)}\n`, 'utf8'));
  return { url, uploaded: true };
}

function summary(m: FileSetManifest, location: ('host' | 'store')[]): FileSetEntrySummary {
  return {
    backupId: m.backupId,
    set: m.set,
    host: m.host,
    createdAt: m.createdAt,
    files: m.files,
    totalBytes: m.totalBytes,
    encrypted: m.encryption !== null,
    location,
  };
}

const describeEntries = (entries: readonly FileSetEntry[]) => {
  const n = (k: FileSetEntry['kind']) => entries.filter((e) => e.kind === k).length;
  return `${n('file')} files, ${n('dir')} directories, ${n('symlink')} symlinks`;
};

// ---------------------------------------------------------------------------------------------
// Restores: what both the plan and the restore read first

interface Located {
  manifest: FileSetManifest;
  from: 'host' | 'store';
  sp: SetPaths;
  selected: FileSetEntry[];
  /** The paths listed on the target: the requested ones, or the set's. */
  roots: string[];
  /** LIST_SH's arguments for the selected entries: the roots, and "=<dir>" for each directory above them. */
  listed: string[];
  keys: FileSetKeys | null;
  digest: (sha256: string) => string;
  keep: boolean;
}

/**
 * Everything a restore decides before it touches the target: the requested paths within the set
 * (refused otherwise), the manifest (from the backup host, else the store), every entry of it
 * within the set's declared paths, and the right key. Throws; nothing has been changed.
 */
async function locate(rt: Runtime, call: Call, input: Omit<FileSetRestoreInput, 'stamp'>): Promise<Located> {
  const { cluster, backupId, set } = input;
  if (typeof backupId !== 'string' || !BACKUP_ID_RE.test(backupId)) throw configError(`a restore needs a backup id; got ${JSON.stringify(backupId)}`);
  const b = backupConfig(call, cluster);
  const fs = setConfig(call, cluster, set);
  call.top.host(cluster, input.target);
  if (input.paths !== undefined && !Array.isArray(input.paths))
    throw configError(`"paths" must be a list of absolute paths, got ${JSON.stringify(input.paths)}`);
  const requested = (input.paths ?? []).map((p) => checkRequestedPath(p, set, fs.paths));
  const sp = setPaths(b.root, cluster, backupId, set);
  const expect = { cluster, backupId, set };
  let manifest = await onBackupHost(rt, call, cluster, (open) => hostManifest(open, sp, expect));
  let from: 'host' | 'store' = 'host';
  if (!manifest && b.store) {
    manifest = await withStore(rt, call, cluster, (store) => storedSetManifest(store, cluster, backupId, set));
    from = 'store';
  }
  if (!manifest)
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} of cluster ${cluster} has no file set "${set}": not in ${sp.dir} on ${b.host}${b.store ? ' nor in the store' : ''} ` +
        `(\`switchyard backup list ${cluster}\` shows what there is)`,
      Errors.BackupNotFound,
    );
  const outside = manifest.entries.find((e) => !withinSet(e.path, fs.paths));
  if (outside)
    throw configError(
      `restore of file set "${set}" refused: backup ${backupId} holds ${outside.path}, which is outside the set as the topology declares it ` +
        `(${fs.paths.join(', ')}); nothing was changed. Name paths within it with --path, or declare the set's paths as they were (${manifest.paths.join(', ')}).`,
    );
  let keys: FileSetKeys | null = null;
  if (manifest.encryption) {
    const k = await setKeys(call, cluster, set, fs);
    if (!k)
      throw configError(
        `file set "${set}" of backup ${backupId} is encrypted (key id ${manifest.encryption.keyId}, read from ${manifest.encryption.keyRef} when it was made), ` +
          `but backup.files.${set} of cluster "${cluster}" names no key; nothing was changed`,
      );
    if (k.keys.id !== manifest.encryption.keyId)
      throw configError(
        `the key from ${k.ref} (backup.files.${set}.key) is not the one file set "${set}" of backup ${backupId} was encrypted with ` +
          `(its id is ${k.keys.id}, the backup's ${manifest.encryption.keyId}, read from ${manifest.encryption.keyRef}); nothing was changed`,
      );
    keys = k.keys;
  }
  const selected = selectEntries(manifest.entries, requested, set);
  const roots = requested.length ? requested : manifest.paths;
  const above = selected.filter((e) => !withinSet(e.path, roots)).map((e) => `=${e.path}`);
  return {
    manifest,
    from,
    sp,
    selected,
    roots,
    listed: [...roots, ...above],
    keys,
    digest: digestWith(keys?.mac ?? null),
    keep: manifest.mode === 'keep-permissions',
  };
}

/** The selected entries against what the target holds now. */
function compareTarget(l: Located, now: Listing): { differ: string[]; missing: string[]; same: number } {
  const seen = new Map(now.entries.map((e) => [e.path, e]));
  const differ: string[] = [];
  const missing: string[] = [];
  let same = 0;
  for (const e of l.selected) {
    const o = seen.get(e.path);
    if (!o) {
      missing.push(e.path);
      continue;
    }
    const d = differences(e, o, l.digest).filter((x) => l.keep || (x !== 'mode' && x !== 'owner'));
    if (d.length) differ.push(e.path);
    else same += 1;
  }
  return { differ, missing, same };
}

export function fileSetActivities(rt: Runtime) {
  return {
    /**
     * Archive one set (see the file's comment). Idempotent: a set already complete in the
     * backup's directory is returned as it is (created: false), and only uploaded when the store
     * lacks it; an unfinished <set>.partial is thrown away and made again.
     */
    fileSetBackup: rt.activity(async (input: FileSetBackupInput, call): Promise<FileSetBackupResult> => {
      const t0 = Date.now();
      const { cluster, backupId, set } = input;
      const b = backupConfig(call, cluster);
      const fs = setConfig(call, cluster, set);
      const sp = setPaths(b.root, cluster, backupId, set);
      const expect = { cluster, backupId, set };
      const k = fs.encrypt ? await setKeys(call, cluster, set, fs) : null;
      if (fs.encrypt && !k) throw configError(`backup.files.${set} of cluster "${cluster}" says encrypt: true but names no key`);
      const archiveName = k ? FILE_SET_ARCHIVE_SEALED : FILE_SET_ARCHIVE_PLAIN;
      const log = { cluster, backupId, set, host: fs.host };

      const done = async (m: FileSetManifest, created: boolean, notes: string[]): Promise<FileSetBackupResult> => {
        const store = b.store ? await onBackupHost(rt, call, cluster, (open) => withStore(rt, call, cluster, (s) => uploadSet(rt, open, s, sp, m))) : null;
        const count = (kind: FileSetEntry['kind']) => m.entries.filter((e) => e.kind === kind).length;
        const durationMs = Date.now() - t0;
        return {
          backupId,
          set,
          host: m.host,
          dir: sp.dir,
          files: count('file'),
          dirs: count('dir'),
          symlinks: count('symlink'),
          totalBytes: m.totalBytes,
          archiveBytes: m.archive.bytes,
          encrypted: m.encryption !== null,
          created,
          store,
          durationMs,
          detail:
            `${created ? 'archived' : 'found (archived by an earlier attempt)'} file set ${set} of ${m.host} (${m.paths.join(', ')}): ` +
            `${describeEntries(m.entries)}, ${formatBytes(m.totalBytes)}, in ${sp.dir} on ${b.host}` +
            `${m.encryption ? ` encrypted (AES-256-GCM, key id ${m.encryption.keyId})` : ''}` +
            `${store ? `; ${store.uploaded ? 'uploaded to' : 'already in'} ${store.url}` : ''}${notes.length ? `; ${notes.join('; ')}` : ''}`,
        };
      };

      const existing = await onBackupHost(rt, call, cluster, async (open) => {
        // A set is kept with its base backup: the backup must be complete first.
        await readManifest(open, cluster, backupId, sp.backupDir);
        return hostManifest(open, sp, expect);
      });
      if (existing) return done(existing, false, []);

      const notes: string[] = [];
      const m = await onHost(rt, call, cluster, fs.host, (src) =>
        onBackupHost(rt, call, cluster, async (dst): Promise<FileSetManifest> => {
          const digest = digestWith(k?.keys.mac ?? null);
          const list = async (when: string) => {
            const l = await listOn(src, fs.paths, `listing file set ${set} (${when})`);
            if (l.missing.length)
              throw configError(`file set "${set}" of cluster "${cluster}": ${l.missing.join(', ')} does not exist on ${fs.host}; nothing was backed up`);
            return l.entries.map((e) => toManifestEntry(e, digest, fs.host));
          };
          const before = await list('before archiving');
          const totalBytes = before.reduce((s, e) => s + e.bytes, 0);
          // Readers of the backup hold its manifest shared: retention keeps the backup meanwhile.
          const inUse = await holdHostLock(dst, posix.join(sp.backupDir, MANIFEST_FILE), 600, `backing up file set ${set}`, { shared: true });
          try {
            await mustExec(dst, ['rm', '-rf', '--', sp.partial], `removing an unfinished ${sp.partial}`, 600);
            await mustExec(dst, ['mkdir', '-p', '--', posix.dirname(sp.partial)], `creating ${posix.dirname(sp.partial)}`);
            await mustExec(dst, ['mkdir', '-m', '700', '--', sp.partial], `creating ${sp.partial}`);
            notes.push(
              await requireFreeSpace(
                dst,
                sp.partial,
                totalBytes + 512 * (before.length + 4),
                (f) =>
                  `not enough free space on ${dst.name} for file set ${set} (${formatBytes(totalBytes)}) plus a reserve of ${formatBytes(f.reserveBytes)}: ` +
                  `${f.dir} has ${formatBytes(f.freeBytes)} free. Nothing was written.`,
              ),
            );
            const iv = randomBytes(12);
            const seal = k ? new SealStream(k.keys.enc, iv, archiveAad(cluster, backupId, set)) : undefined;
            const archivePath = posix.join(sp.partial, archiveName);
            rt.log.info('archiving file set', { ...log, files: before.length, bytes: totalBytes, encrypted: !!k });
            const tar = ['env', 'LC_ALL=C', 'tar', '--numeric-owner', '-cpf', '-', '-C', '/', '--', ...fs.paths.map((p) => p.slice(1))];
            const sent = await streamFile(
              src,
              dst,
              `the archive of ${fs.paths.join(', ')} (tar)`,
              archivePath,
              TRANSFER_TIMEOUT_SECONDS,
              (n) => heartbeat({ set, bytes: n }),
              { readArgv: tar, through: seal },
            );
            const after = await list('after archiving');
            const change = listingChange(before, after);
            if (change) throw new Error(`file set ${set} on ${fs.host}: ${change} while it was archived; archiving it again`);
            // What landed on the backup host is what passed through the worker.
            const v = await verifyOnHost(dst, sp.partial, backupId, [{ name: archiveName, bytes: sent.bytes, sha256: sent.sha256 }], LIST_TIMEOUT_SECONDS);
            if (!v.ok) throw new Error(`the archive written to ${sp.partial} on ${dst.name} is not what was sent: ${v.detail}`);
            const manifest: FileSetManifest = {
              format: FILE_SET_FORMAT,
              cluster,
              backupId,
              set,
              host: fs.host,
              paths: [...fs.paths],
              mode: fs.mode,
              createdAt: rt.now().toISOString(),
              entries: before,
              files: before.filter((e) => e.kind === 'file').length,
              totalBytes,
              digest: k ? 'hmac-sha256' : 'sha256',
              archive: { name: archiveName, bytes: sent.bytes, sha256: sent.sha256 },
              encryption:
                k && seal ? { algorithm: 'aes-256-gcm', iv: iv.toString('hex'), tag: seal.tag().toString('hex'), keyId: k.keys.id, keyRef: k.ref } : null,
            };
            await writeText(dst, posix.join(sp.partial, FILE_SET_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
            await mustExec(dst, ['mv', '-T', '--', sp.partial, sp.dir], `renaming ${sp.partial} to ${sp.dir}`);
            return manifest;
          } catch (err) {
            await execArgv(dst, ['rm', '-rf', '--', sp.partial], 600).catch(() => undefined);
            throw err;
          } finally {
            await inUse.release();
          }
        }),
      );
      rt.log.info('file set archived', { ...log, archiveBytes: m.archive.bytes });
      return done(m, true, notes);
    }),

    /** Every backup's file sets: on the backup host, in the store (backup.store), or both. */
    fileSetList: rt.activity(async (input: { cluster: string }, call): Promise<FileSetEntrySummary[]> => {
      const b = backupConfig(call, input.cluster);
      const clusterDir = clusterDirOf(b.root, input.cluster);
      const byKey = new Map<string, FileSetEntrySummary>();
      const ok = (id: string, set: string) => BACKUP_ID_RE.test(id) && !id.endsWith('.partial') && NAME_RE.test(set);
      await onBackupHost(rt, call, input.cluster, async (open) => {
        const found = await runAll(
          open,
          shellScript(
            `[ -d "$1" ] || exit 0; find "$1" -mindepth 4 -maxdepth 4 -type f -path "$1/*/files/*/${FILE_SET_MANIFEST}" -printf '%s\\t%p\\n'`,
            clusterDir,
          ),
          `listing the file sets in ${clusterDir}`,
          300,
        );
        const want: { path: string; bytes: number; id: string; set: string }[] = [];
        for (const line of found.split('\n')) {
          const tab = line.indexOf('\t');
          if (tab <= 0) continue;
          const path = line.slice(tab + 1);
          const [id, files, set] = path.slice(clusterDir.length + 1).split('/');
          if (files === 'files' && ok(id, set)) want.push({ path, bytes: Number(line.slice(0, tab)), id, set });
        }
        const texts = await readTextFiles(open, want);
        for (const w of want) {
          const t = texts.get(w.path);
          if (t === undefined) continue;
          try {
            const m = parseFileSetManifest(t, { cluster: input.cluster, backupId: w.id, set: w.set });
            byKey.set(`${w.id}/${w.set}`, summary(m, ['host']));
          } catch (err) {
            rt.log.warn('unusable file set manifest', { cluster: input.cluster, path: w.path, error: errorMessage(err) });
          }
        }
      });
      if (b.store) {
        await withStore(rt, call, input.cluster, async (store) => {
          const prefix = clusterPrefix(store.cfg, input.cluster);
          for (const key of await listKeys(store, prefix)) {
            const m = /^([^/]+)\/files\/([^/]+)\/files-manifest\.json$/.exec(key.slice(prefix.length));
            if (!m || !ok(m[1], m[2])) continue;
            const here = byKey.get(`${m[1]}/${m[2]}`);
            if (here) {
              here.location = ['host', 'store'];
              continue;
            }
            const sm = await storedSetManifest(store, input.cluster, m[1], m[2]).catch(() => null);
            if (sm) byKey.set(`${m[1]}/${m[2]}`, summary(sm, ['store']));
            heartbeat();
          }
        });
      }
      return [...byKey.values()].sort((x, y) => Date.parse(y.createdAt) - Date.parse(x.createdAt) || (x.set < y.set ? -1 : 1));
    }),

    /** What a restore would do, read-only: refuses a path outside the set, and compares the target's files with the backup's. */
    fileSetPlan: rt.activity(async (input: Omit<FileSetRestoreInput, 'stamp'>, call): Promise<FileSetPlan> => {
      const l = await locate(rt, call, input);
      const now = await onHost(rt, call, input.cluster, input.target, (t) => listOn(t, l.listed, `listing ${l.roots.join(', ')}`, { lenient: true }));
      const c = compareTarget(l, now);
      return {
        backupId: input.backupId,
        set: input.set,
        target: input.target,
        from: l.from,
        encrypted: l.manifest.encryption !== null,
        restoring: l.selected.length,
        differ: c.differ,
        missing: c.missing,
        same: c.same,
        detail:
          `file set ${input.set} of backup ${input.backupId} (${l.manifest.createdAt}, from ${l.manifest.host}, read from the ${l.from === 'host' ? 'backup host' : 'store'}` +
          `${l.manifest.encryption ? ', encrypted' : ''}) onto ${input.target}: ${describeEntries(l.selected)}; ` +
          `${c.differ.length} differ from the backup and would be moved aside${c.differ.length ? ` (${c.differ.slice(0, 5).join(', ')}${c.differ.length > 5 ? ', …' : ''})` : ''}, ` +
          `${c.missing.length} missing, ${c.same} already as backed up`,
      };
    }),

    /**
     * Put the set (or the requested paths of it) back onto the target: the archive streamed into a
     * private staging directory beside the set's first path (decrypted in the worker), extracted
     * there only once it authenticated and matched the manifest's SHA-256, every entry checked
     * against the manifest; then what is in the way moved aside to <path>.switchyard-<stamp>
     * (never deleted) and the restored entries moved in; directories' modes and owners set; the
     * result listed again and checked. The staging directory is removed whatever happens.
     */
    fileSetRestore: rt.activity(async (input: FileSetRestoreInput, call): Promise<FileSetRestoreResult> => {
      const t0 = Date.now();
      if (typeof input.stamp !== 'string' || !STAMP_RE.test(input.stamp))
        throw configError(`"stamp" must be a UTC stamp like 20250101T120000Z, got ${JSON.stringify(input.stamp)}`);
      const l = await locate(rt, call, input);
      const { cluster, backupId, set, target } = input;
      const m = l.manifest;
      const b = backupConfig(call, cluster);
      const staging = posix.join(posix.dirname(m.paths[0]), `.switchyard-files-${set}-${input.stamp}`);
      const root = posix.join(staging, 'root');
      const archive = posix.join(staging, 'archive.tar');
      const what = `file set ${set} of backup ${backupId} (${m.archive.name})`;
      const sealed = m.encryption && l.keys ? { key: l.keys.enc, iv: m.encryption.iv, tag: m.encryption.tag, aad: archiveAad(cluster, backupId, set) } : null;
      const corrupt = (err: unknown): never => {
        if (err instanceof ChecksumMismatch || err instanceof ArchiveAuthFailed)
          throw ApplicationFailure.nonRetryable(`${errorMessage(err)}. Nothing was restored: the files on ${target} are unchanged.`, Errors.BackupCorrupt);
        throw err;
      };
      return onHost(rt, call, cluster, target, async (t): Promise<FileSetRestoreResult> => {
        try {
          await mustExec(t, ['rm', '-rf', '--', staging], `removing an earlier staging directory ${staging}`, 600);
          await mustExec(t, ['mkdir', '-p', '--', posix.dirname(staging)], `creating ${posix.dirname(staging)}`);
          await mustExec(t, ['mkdir', '-m', '700', '--', staging], `creating ${staging}`);
          await mustExec(t, ['mkdir', '-m', '700', '--', root], `creating ${root}`);
          // 1. The archive into the staging directory, checked (and decrypted) in the worker on the way.
          if (l.from === 'host') {
            await onBackupHost(rt, call, cluster, async (src) => {
              const lock: HostLock = await holdHostLock(src, posix.join(l.sp.backupDir, MANIFEST_FILE), 600, `restoring file set ${set}`, { shared: true });
              try {
                await streamFile(src, t, posix.join(l.sp.dir, m.archive.name), archive, TRANSFER_TIMEOUT_SECONDS, (n) => heartbeat({ set, bytes: n }), {
                  through: new OpenStream(m.archive, what, sealed),
                }).catch(corrupt);
              } finally {
                await lock.release();
              }
            });
          } else {
            await withStore(rt, call, cluster, async (store) => {
              const key = m.store?.key ?? `${storeSetPrefix(store, cluster, backupId, set)}${m.archive.name}`;
              await downloadFile(t, store, key, archive, m.archive, new OpenStream(m.archive, `${what} in ${store.url(key)}`, sealed)).catch(corrupt);
            });
          }
          // 2. Authenticated and whole: extracted in the staging directory, checked entry by entry.
          const perms = l.keep ? ['-p'] : ['--no-same-owner', '--no-same-permissions'];
          await runAll(
            t,
            ['env', 'LC_ALL=C', 'tar', '--numeric-owner', ...perms, '-xf', archive, '-C', root],
            `extracting ${what} in ${root}`,
            TRANSFER_TIMEOUT_SECONDS,
          );
          await mustExec(t, ['rm', '-f', '--', archive], `removing ${archive}`);
          const staged = await listOn(t, [], `checking the extracted ${what}`, { root });
          const check = checkStaged(m, staged, l.digest, l.keep);
          if (check.problems.length)
            throw ApplicationFailure.nonRetryable(
              `${what} does not match its manifest once extracted on ${target}: ${check.problems.slice(0, 5).join('; ')}` +
                `${check.problems.length > 5 ? ` (and ${check.problems.length - 5} more)` : ''}. Nothing was restored: the files on ${target} are unchanged.`,
              Errors.BackupCorrupt,
            );
          // 3. Into place: what is in the way moved aside, never deleted.
          // The directories above the topmost entries (outside the set: the host's own) are made when missing.
          const tops = l.selected.filter((e) => !l.selected.some((o) => e.path.startsWith(`${o.path}/`)));
          for (const d of new Set(tops.map((e) => posix.dirname(e.path)))) await mustExec(t, ['mkdir', '-p', '--', d], `creating ${d}`);
          const letter = (e: FileSetEntry) => (e.kind === 'dir' ? 'd' : e.kind === 'file' ? 'f' : 'l');
          const swapped = { placed: [] as string[], same: [] as string[], aside: [] as { path: string; to: string }[] };
          for (const batch of batches(l.selected, (e) => e.path.length + 8)) {
            const out = await runAll(
              t,
              shellScript(SWAP_SH, root, `.switchyard-${input.stamp}`, ...batch.flatMap((e) => [letter(e), e.path])),
              `moving file set ${set} into place`,
              600,
            ).catch((err: unknown) => {
              throw new Error(
                `${errorMessage(err)}; before it: moved aside ${swapped.aside.map((a) => `${a.path} → ${a.to}`).join(', ') || 'nothing'}, ` +
                  `placed ${swapped.placed.length} entries`,
              );
            });
            const s = parseSwap(out);
            swapped.placed.push(...s.placed);
            swapped.same.push(...s.same);
            swapped.aside.push(...s.aside);
          }
          const notKept = [...check.notKept.filter((n) => l.selected.some((e) => e.path === n.path))];
          if (l.keep) {
            const dirs = l.selected
              .filter((e) => e.kind === 'dir')
              .map((e) => e.path)
              .reverse();
            for (const batch of batches(dirs, (p) => p.length + 4)) {
              const out = await runAll(t, shellScript(DIR_ATTRS_SH, root, ...batch), `setting the modes of file set ${set}'s directories`, 600);
              const f = out.split('\0');
              for (let i = 0; i + 1 < f.length; i += 2)
                if (f[i] === 'owner' && !notKept.some((n) => n.path === f[i + 1])) notKept.push({ path: f[i + 1], what: 'owner', expected: '', actual: '' });
            }
          }
          // 4. As it is now at the set's paths: the bytes, kinds and modes must be the backup's.
          const now = await listOn(t, l.listed, `checking the restored file set ${set}`, { lenient: true });
          const seen = new Map(now.entries.map((e) => [e.path, e]));
          const wrong: string[] = [];
          for (const e of l.selected) {
            const o = seen.get(e.path);
            if (!o) {
              wrong.push(`${e.path} is missing`);
              continue;
            }
            for (const d of differences(e, o, l.digest)) {
              if (d === 'owner') {
                const n = notKept.find((x) => x.path === e.path && x.what === 'owner');
                if (!l.keep) continue;
                if (n) Object.assign(n, { expected: ownerText(e), actual: ownerText(o) });
                else notKept.push({ path: e.path, what: 'owner', expected: ownerText(e), actual: ownerText(o) });
              } else if (d === 'mode') {
                if (l.keep) wrong.push(`${e.path} has mode ${o.mode}, not ${e.mode}`);
              } else wrong.push(`${e.path}: ${d} differs from the backup`);
            }
          }
          const aside = swapped.aside.map((a) => `${a.path} → ${a.to}`);
          if (wrong.length)
            throw ApplicationFailure.nonRetryable(
              `file set ${set} was put in place on ${target} but does not match the backup afterwards: ${wrong.slice(0, 5).join('; ')}; ` +
                `what was there before is kept aside: ${aside.join(', ') || 'nothing was moved'}`,
              Errors.BackupCorrupt,
            );
          const durationMs = Date.now() - t0;
          rt.log.info('file set restored', { cluster, backupId, set, target, placed: swapped.placed.length, movedAside: swapped.aside.length });
          const kept = notKept.length
            ? `; NOT kept (the SSH user ${t.host.user ?? call.top.cluster(cluster).ssh.user} may not set them): ${notKept
                .slice(0, 5)
                .map((n) => `${n.what} of ${n.path} is ${n.actual || '?'}, was ${n.expected || '?'}`)
                .join('; ')}${notKept.length > 5 ? ` (and ${notKept.length - 5} more)` : ''}`
            : l.keep
              ? '; owners and modes as backed up'
              : '; contents only (the set keeps no owners or modes)';
          return {
            backupId,
            set,
            target,
            from: l.from,
            placed: swapped.placed,
            movedAside: swapped.aside,
            unchanged: swapped.same.length,
            notKept,
            durationMs,
            detail:
              `restored file set ${set} of backup ${backupId} onto ${target} from the ${l.from === 'host' ? `backup host ${b.host}` : 'store'}` +
              `${m.encryption ? ' (decrypted and authenticated)' : ''}: ${describeEntries(l.selected)} checked against the manifest; ` +
              `placed ${swapped.placed.length}, ${swapped.same.length} already as backed up; ` +
              `moved aside ${aside.length ? aside.join(', ') : 'nothing'}${kept}`,
          };
        } finally {
          await execArgv(t, ['rm', '-rf', '--', staging], 600).catch(() => undefined);
        }
      });
    }),
  };
}
