/**
 * The pure parts of file-set backups (exported for the unit tests): the listing script run on a
 * host and its parser, the check of a path against a set's declared paths, the manifest's parser,
 * comparing what a host holds with the manifest, the key, and the archive's encryption.
 *
 * Design, in one place:
 * - The archive is `tar --numeric-owner -cpf - -C / <paths>` run on the set's host, streamed
 *   through the worker (never through the worker's memory as a whole) into the backup's directory
 *   on the backup host, then uploaded from there to the store like a base backup's files.
 * - The per-file manifest (path, kind, uid/gid and their names, mode, size, SHA-256, symlink
 *   target) is computed on the set's host by LIST_SH (`find -printf` and `sha256sum -z`), once
 *   before and once after the archive is made; when the two differ a file changed while it was
 *   archived and the backup of the set is tried again, so the manifest describes the archive.
 * - `encrypt: true`: AES-256-GCM in the worker while the archive streams (node:crypto), under a
 *   key derived (HKDF-SHA256) from the set's secret reference; the IV, the tag and the key's id
 *   are recorded in the manifest, the cluster/backup/set are the associated data (an archive
 *   cannot be passed off as another set's). The entries' digests are then HMACs under another
 *   derived key, so the manifest does not give away a hash of a secret file to guess against.
 *   Neither the key nor a plaintext byte reaches the backup host, the store, or workflow history.
 * - A restore streams the archive to a private staging directory on the target, decrypting in the
 *   worker; only once the tag verified (the stream ends without error) is it extracted, there, and
 *   every entry checked against the manifest before anything at the set's paths is touched.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { posix } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import {
  FILE_SET_ARCHIVE_PLAIN,
  FILE_SET_ARCHIVE_SEALED,
  FILE_SET_FORMAT,
  FILE_SET_MANIFEST,
  type FileSetEncryption,
  type FileSetEntry,
  type FileSetManifest,
} from '../../contract/backup-files';
import { BACKUP_ID_RE } from '../../contract/backup';
import { errorMessage } from '../activity-context';
import { configError } from '../resolver';
import { ChecksumMismatch } from './store-client';

// ---------------------------------------------------------------------------------------------
// Listing on a host

/**
 * Every entry under the paths after $1 (not following symlinks): per entry three NUL-terminated
 * fields "<kind>\t<uid>\t<gid>\t<user>\t<group>\t<mode>\t<size>", "<symlink target>", "<path>"; a path
 * that does not exist as "M\t\0\0<path>\0". Then the marker "S\t\0\0\0" and `sha256sum -z` of every
 * regular file ("<hex>  <path>\0"). $1 "strict": a file or directory that cannot be read fails the
 * script (exit 1, with find's or sha256sum's message): a backup, the check of a staged copy;
 * "lenient": it is listed without a checksum (what a restore replaces may be unreadable).
 * A path written "=<path>" is listed alone, not what is under it (a directory above a restored part).
 */
export const LIST_SH = [
  'strict=$1; shift',
  'for a in "$@"; do',
  '  p=${a#=}',
  '  if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf "M\\t\\0\\0%s\\0" "$p"; fi',
  'done',
  'for a in "$@"; do',
  '  p=${a#=}; d=; [ "$p" = "$a" ] || d="-maxdepth 0"',
  '  if [ -e "$p" ] || [ -L "$p" ]; then',
  '    find "$p" $d -printf \'%y\\t%U\\t%G\\t%u\\t%g\\t%m\\t%s\\0%l\\0%p\\0\' || [ "$strict" = lenient ] || exit 1',
  '  fi',
  'done',
  'printf "S\\t\\0\\0\\0"',
  'for a in "$@"; do',
  '  p=${a#=}; d=; [ "$p" = "$a" ] || d="-maxdepth 0"',
  '  [ -e "$p" ] || [ -L "$p" ] || continue',
  '  if [ "$strict" = lenient ]; then find "$p" $d -type f -exec sha256sum -z -- {} + 2>/dev/null',
  '  else find "$p" $d -type f -exec sha256sum -z -- {} + || exit 1; fi',
  'done',
  'exit 0',
].join('\n');

/** One entry as a host lists it (sha256: plain hex, null for anything but a regular file). */
export interface ListedEntry extends Omit<FileSetEntry, 'kind'> {
  /** What a manifest entry can be, or 'other' (a socket, fifo or device: refused). */
  kind: FileSetEntry['kind'] | 'other';
  /** find's %y: f, d, l, or another letter. */
  letter: string;
}

export interface Listing {
  entries: ListedEntry[];
  /** Paths given that do not exist. */
  missing: string[];
}

const KINDS: Record<string, FileSetEntry['kind']> = { f: 'file', d: 'dir', l: 'symlink' };

/** "600" → "0600"; "4755" stays. */
export function normMode(m: string): string {
  return m.padStart(4, '0');
}

/**
 * Parse LIST_SH's output. `root`: the entries were listed under a staging directory: their paths
 * are given relative to it ("/opt/x" for "<root>/opt/x"), and the root itself is left out.
 * `lenient`: a file without a checksum (unreadable) is kept with sha256 null instead of refused.
 * Throws on output it cannot read (cut short, a line out of place).
 */
export function parseListing(text: string, root?: string, opts: { lenient?: boolean } = {}): Listing {
  const f = text.split('\0');
  const entries: ListedEntry[] = [];
  const missing: string[] = [];
  const strip = (p: string): string | null => {
    if (root === undefined) return p;
    if (p === root) return null;
    if (!p.startsWith(`${root}/`)) throw new Error(`the listing of ${root} holds ${JSON.stringify(p)}, which is not under it`);
    return p.slice(root.length);
  };
  let i = 0;
  let sums = false;
  for (; i + 2 < f.length; i += 3) {
    const [head, link, path] = [f[i], f[i + 1], f[i + 2]];
    if (head === 'S\t') {
      sums = true;
      i += 3;
      break;
    }
    if (head === 'M\t') {
      const p = strip(path);
      if (p !== null) missing.push(p);
      continue;
    }
    const h = head.split('\t');
    if (h.length !== 7 || h[0].length !== 1 || !/^\d+$/.test(h[1]) || !/^\d+$/.test(h[2]) || !/^[0-7]{1,4}$/.test(h[5]) || !/^\d+$/.test(h[6]))
      throw new Error(`unreadable listing line ${JSON.stringify(head.slice(0, 100))}`);
    const p = strip(path);
    if (p === null) continue;
    const kind = KINDS[h[0]] ?? 'other';
    entries.push({
      path: p,
      kind,
      letter: h[0],
      uid: Number(h[1]),
      gid: Number(h[2]),
      user: h[3],
      group: h[4],
      mode: normMode(h[5]),
      bytes: kind === 'file' ? Number(h[6]) : 0,
      sha256: null,
      target: kind === 'symlink' ? link : null,
    });
  }
  if (!sums) throw new Error('the listing ended before its checksums (cut short?)');
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const line of f.slice(i)) {
    if (line === '') continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/s.exec(line);
    if (!m) throw new Error(`unreadable checksum line ${JSON.stringify(line.slice(0, 100))}`);
    const p = strip(m[2]);
    if (p === null) continue;
    const e = byPath.get(p);
    if (e && e.kind === 'file') e.sha256 = m[1];
  }
  if (!opts.lenient) for (const e of entries) if (e.kind === 'file' && e.sha256 === null) throw new Error(`no checksum was printed for ${e.path}`);
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, missing };
}

// ---------------------------------------------------------------------------------------------
// Paths

/** `p` is one of `declared` or lies under one of them. */
export function withinSet(p: string, declared: readonly string[]): boolean {
  return declared.some((d) => p === d || p.startsWith(`${d}/`));
}

/**
 * A path a restore was asked for: absolute, normalised (no ".."), within the set's declared
 * paths. Throws a ConfigError naming the set and its paths; nothing has been changed yet.
 */
export function checkRequestedPath(p: unknown, set: string, declared: readonly string[]): string {
  if (typeof p !== 'string' || !p.startsWith('/') || /[\0\n]/.test(p))
    throw configError(`restore of file set "${set}" refused: ${JSON.stringify(p)} is not an absolute path; nothing was changed`);
  const parts = p.split('/');
  if (parts.includes('..') || parts.includes('.'))
    throw configError(`restore of file set "${set}" refused: ${JSON.stringify(p)} holds "." or ".." segments; nothing was changed`);
  const norm = p.length > 1 ? p.replace(/\/+$/, '').replace(/\/{2,}/g, '/') : p;
  if (!withinSet(norm, declared))
    throw configError(`restore of file set "${set}" refused: ${norm} is outside the set (its paths: ${declared.join(', ')}); nothing was changed`);
  return norm;
}

/**
 * The entries a restore puts back: those at or under the requested paths (all without any), and
 * the directories above them within the set (created when missing). Sorted: parents first.
 */
export function selectEntries(entries: readonly FileSetEntry[], requested: readonly string[] | undefined, set: string): FileSetEntry[] {
  if (!requested || requested.length === 0) return [...entries];
  const picked = new Set<string>();
  for (const r of requested) {
    const hit = entries.filter((e) => e.path === r || e.path.startsWith(`${r}/`));
    if (!hit.length) throw configError(`restore of file set "${set}" refused: the backup holds nothing at ${r}; nothing was changed`);
    for (const e of hit) picked.add(e.path);
  }
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const p of [...picked]) {
    for (let d = posix.dirname(p); d !== '/' && d !== '.'; d = posix.dirname(d)) {
      const e = byPath.get(d);
      if (e?.kind === 'dir') picked.add(d);
    }
  }
  return entries.filter((e) => picked.has(e.path));
}

// ---------------------------------------------------------------------------------------------
// The manifest

const HEX64 = /^[0-9a-f]{64}$/;

/** files-manifest.json checked field by field, and that it is this cluster's, backup's and set's. Throws with the reason. */
export function parseFileSetManifest(text: string, expect?: { cluster: string; backupId: string; set: string }): FileSetManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${FILE_SET_MANIFEST} is not JSON: ${errorMessage(err)}`);
  }
  const m = doc as Record<string, unknown>;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error(`${FILE_SET_MANIFEST} is not a JSON object`);
  const bad = (field: string, want: string) => new Error(`${FILE_SET_MANIFEST}: "${field}" should be ${want}, got ${JSON.stringify(m[field])?.slice(0, 100)}`);
  if (m.format !== FILE_SET_FORMAT) throw bad('format', JSON.stringify(FILE_SET_FORMAT));
  for (const k of ['cluster', 'backupId', 'set', 'host'] as const) if (typeof m[k] !== 'string' || m[k] === '') throw bad(k, 'a non-empty string');
  if (!BACKUP_ID_RE.test(m.backupId as string)) throw bad('backupId', 'a backup id');
  if (expect && (m.cluster !== expect.cluster || m.backupId !== expect.backupId || m.set !== expect.set))
    throw new Error(
      `${FILE_SET_MANIFEST} describes set ${JSON.stringify(m.set)} of backup ${JSON.stringify(m.backupId)} of cluster ${JSON.stringify(m.cluster)}, ` +
        `not ${expect.set} of ${expect.backupId} of ${expect.cluster}`,
    );
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) throw bad('createdAt', 'an ISO time');
  if (m.mode !== 'keep-permissions' && m.mode !== 'contents-only') throw bad('mode', '"keep-permissions" or "contents-only"');
  if (m.digest !== 'sha256' && m.digest !== 'hmac-sha256') throw bad('digest', '"sha256" or "hmac-sha256"');
  const isPath = (p: unknown): p is string => typeof p === 'string' && p.startsWith('/') && p !== '/' && posix.normalize(p) === p && !p.endsWith('/');
  if (!Array.isArray(m.paths) || m.paths.length === 0 || !m.paths.every(isPath)) throw bad('paths', 'a non-empty list of normalised absolute paths');
  const paths = m.paths as string[];
  if (!Array.isArray(m.entries)) throw bad('entries', 'a list');
  const entries: FileSetEntry[] = m.entries.map((e: unknown, i: number) => {
    const x = e as Record<string, unknown>;
    const no = (what: string) => new Error(`${FILE_SET_MANIFEST}: entries[${i}].${what}`);
    if (!x || typeof x !== 'object') throw no('is not an object');
    if (!isPath(x.path)) throw no(`path ${JSON.stringify(x.path)?.slice(0, 100)} is not a normalised absolute path`);
    if (!withinSet(x.path, paths)) throw no(`path ${x.path} is outside the set's paths (${paths.join(', ')})`);
    if (x.kind !== 'file' && x.kind !== 'dir' && x.kind !== 'symlink') throw no('kind is not file, dir or symlink');
    for (const k of ['uid', 'gid', 'bytes'] as const)
      if (typeof x[k] !== 'number' || !Number.isInteger(x[k]) || (x[k] as number) < 0) throw no(`${k} is not a whole number`);
    for (const k of ['user', 'group'] as const) if (typeof x[k] !== 'string') throw no(`${k} is not a string`);
    if (typeof x.mode !== 'string' || !/^[0-7]{4}$/.test(x.mode)) throw no('mode is not 4 octal digits');
    if (x.kind === 'file' ? typeof x.sha256 !== 'string' || !HEX64.test(x.sha256) : x.sha256 !== null) throw no('sha256 is malformed');
    if (x.kind === 'symlink' ? typeof x.target !== 'string' || x.target === '' : x.target !== null) throw no('target is malformed');
    return {
      path: x.path,
      kind: x.kind,
      uid: x.uid as number,
      gid: x.gid as number,
      user: x.user as string,
      group: x.group as string,
      mode: x.mode,
      bytes: x.bytes as number,
      sha256: (x.sha256 as string | null) ?? null,
      target: (x.target as string | null) ?? null,
    };
  });
  for (let i = 1; i < entries.length; i++)
    if (!(entries[i - 1].path < entries[i].path))
      throw new Error(`${FILE_SET_MANIFEST}: entries are not sorted by path (or one is listed twice) at ${entries[i].path}`);
  const a = m.archive as Record<string, unknown>;
  if (!a || typeof a !== 'object' || (a.name !== FILE_SET_ARCHIVE_PLAIN && a.name !== FILE_SET_ARCHIVE_SEALED)) throw bad('archive', 'the archive record');
  if (typeof a.bytes !== 'number' || !Number.isInteger(a.bytes) || a.bytes <= 0 || typeof a.sha256 !== 'string' || !HEX64.test(a.sha256))
    throw bad('archive', "the archive's size and SHA-256");
  let encryption: FileSetEncryption | null = null;
  if (m.encryption !== null) {
    const e = m.encryption as Record<string, unknown>;
    if (
      !e ||
      e.algorithm !== 'aes-256-gcm' ||
      typeof e.iv !== 'string' ||
      !/^[0-9a-f]{24}$/.test(e.iv) ||
      typeof e.tag !== 'string' ||
      !/^[0-9a-f]{32}$/.test(e.tag) ||
      typeof e.keyId !== 'string' ||
      !/^[0-9a-f]{16}$/.test(e.keyId) ||
      typeof e.keyRef !== 'string'
    )
      throw bad('encryption', 'null or { algorithm: "aes-256-gcm", iv, tag, keyId, keyRef }');
    encryption = { algorithm: 'aes-256-gcm', iv: e.iv, tag: e.tag, keyId: e.keyId, keyRef: e.keyRef };
  }
  if ((encryption !== null) !== (a.name === FILE_SET_ARCHIVE_SEALED) || (encryption !== null) !== (m.digest === 'hmac-sha256'))
    throw new Error(`${FILE_SET_MANIFEST}: the archive's name, its encryption and the digests do not agree`);
  const files = entries.filter((e) => e.kind === 'file');
  const st = m.store as Record<string, unknown> | undefined;
  const store =
    st && typeof st === 'object' && typeof st.url === 'string' && typeof st.key === 'string' && typeof st.uploadedAt === 'string'
      ? { url: st.url, key: st.key, versionId: typeof st.versionId === 'string' ? st.versionId : null, uploadedAt: st.uploadedAt }
      : undefined;
  return {
    format: FILE_SET_FORMAT,
    cluster: m.cluster as string,
    backupId: m.backupId as string,
    set: m.set as string,
    host: m.host as string,
    paths,
    mode: m.mode,
    createdAt: m.createdAt,
    entries,
    files: files.length,
    totalBytes: files.reduce((s, f) => s + f.bytes, 0),
    digest: m.digest,
    archive: { name: a.name, bytes: a.bytes, sha256: a.sha256 },
    encryption,
    ...(store ? { store } : {}),
  };
}

/** A listed entry as the manifest records it (its digest plain or keyed); refuses sockets, fifos and devices. */
export function toManifestEntry(e: ListedEntry, digest: (sha256: string) => string, host: string): FileSetEntry {
  if (e.kind === 'other')
    throw configError(`${e.path} on ${host} is not a regular file, directory or symlink (find type "${e.letter}"): a file set cannot hold it`);
  return {
    path: e.path,
    kind: e.kind,
    uid: e.uid,
    gid: e.gid,
    user: e.user,
    group: e.group,
    mode: e.mode,
    bytes: e.bytes,
    sha256: e.kind === 'file' && e.sha256 ? digest(e.sha256) : null,
    target: e.target,
  };
}

/** Two listings of the same paths differ (a file changed while being archived): the first difference, in words; null when equal. */
export function listingChange(before: readonly FileSetEntry[], after: readonly FileSetEntry[]): string | null {
  const b = new Map(before.map((e) => [e.path, JSON.stringify(e)]));
  const a = new Map(after.map((e) => [e.path, JSON.stringify(e)]));
  for (const [p, v] of b) {
    if (!a.has(p)) return `${p} went away`;
    if (a.get(p) !== v) return `${p} changed`;
  }
  for (const p of a.keys()) if (!b.has(p)) return `${p} appeared`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Comparing a host's files with the manifest

export type Aspect = 'kind' | 'content' | 'target' | 'mode' | 'owner';

/** Where a listed entry differs from the manifest's (its digest computed by `digest`). */
export function differences(e: FileSetEntry, o: ListedEntry, digest: (sha256: string) => string): Aspect[] {
  const out: Aspect[] = [];
  if (o.kind !== e.kind) return ['kind'];
  if (e.kind === 'file' && (o.bytes !== e.bytes || o.sha256 === null || digest(o.sha256) !== e.sha256)) out.push('content');
  if (e.kind === 'symlink' && o.target !== e.target) out.push('target');
  if (e.kind !== 'symlink' && o.mode !== e.mode) out.push('mode');
  if (o.uid !== e.uid || o.gid !== e.gid) out.push('owner');
  return out;
}

export const ownerText = (x: { user: string; group: string; uid: number; gid: number }) => `${x.user}:${x.group} (${x.uid}:${x.gid})`;

export interface StagedCheck {
  /** What makes the staged copy unusable: content, kind or target differences, a mode that could not be set, an entry not in the manifest, one missing. */
  problems: string[];
  notKept: { path: string; what: 'owner' | 'mode'; expected: string; actual: string }[];
}

/**
 * The staged (extracted) copy against the manifest. `keepPermissions`: modes must match (a
 * mismatch is a problem) and owners that differ are reported as not kept (the SSH user may not
 * chown). Anything extracted that is not in the manifest, except the directories above the set's
 * paths, is a problem.
 */
export function checkStaged(
  manifest: Pick<FileSetManifest, 'entries' | 'paths'>,
  staged: Listing,
  digest: (sha256: string) => string,
  keepPermissions: boolean,
): StagedCheck {
  const problems: string[] = [];
  const notKept: StagedCheck['notKept'] = [];
  const seen = new Map(staged.entries.map((e) => [e.path, e]));
  for (const e of manifest.entries) {
    const o = seen.get(e.path);
    if (!o) {
      problems.push(`${e.path} is missing from the archive`);
      continue;
    }
    for (const d of differences(e, o, digest)) {
      if (d === 'owner') {
        if (keepPermissions) notKept.push({ path: e.path, what: 'owner', expected: ownerText(e), actual: ownerText(o) });
      } else if (d === 'mode') {
        if (keepPermissions) problems.push(`${e.path} has mode ${o.mode}, the manifest says ${e.mode}`);
      } else
        problems.push(
          d === 'content'
            ? `${e.path} does not match the manifest's size and SHA-256`
            : d === 'kind'
              ? `${e.path} is a ${o.kind === 'other' ? `"${o.letter}"` : o.kind}, the manifest says ${e.kind}`
              : `${e.path} points to ${o.target}, the manifest says ${e.target}`,
        );
    }
  }
  const listed = new Set(manifest.entries.map((e) => e.path));
  for (const o of staged.entries) {
    if (listed.has(o.path)) continue;
    const above = o.kind === 'dir' && manifest.paths.some((p) => p.startsWith(`${o.path}/`));
    if (!above) problems.push(`the archive holds ${o.path}, which is not in the manifest`);
  }
  return { problems, notKept };
}

// ---------------------------------------------------------------------------------------------
// The key and the archive's encryption

/**
 * The set's key from its secret's value: 32 bytes written as 64 hex digits or as base64. A
 * ConfigError names the reference (`what`), never the value.
 */
export function parseFileSetKey(value: string, what: string): Buffer {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return Buffer.from(v, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(v)) {
    const b = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  throw configError(
    `${what} is not a usable key: expected 32 random bytes written as 64 hex digits or base64 (e.g. \`openssl rand -base64 32\`), got ${v.length} characters`,
  );
}

export interface FileSetKeys {
  /** The AES-256-GCM key of the archive. */
  enc: Buffer;
  /** The HMAC key of the entries' digests. */
  mac: Buffer;
  /** 16 hex digits naming the key (in the manifest: a wrong key is told apart from damage). */
  id: string;
}

export function deriveKeys(key: Buffer): FileSetKeys {
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, 32));
  return {
    enc: derive('switchyard file-set archive v1'),
    mac: derive('switchyard file-set digests v1'),
    id: createHmac('sha256', key).update('switchyard file-set key id v1').digest('hex').slice(0, 16),
  };
}

/** The digest an entry records: the SHA-256 itself, or its HMAC under the set's digest key. */
export function digestWith(mac: Buffer | null): (sha256: string) => string {
  return mac ? (sha) => createHmac('sha256', mac).update(sha).digest('hex') : (sha) => sha;
}

/** The associated data of an archive: it authenticates as this cluster's, backup's and set's only. */
export function archiveAad(cluster: string, backupId: string, set: string): Buffer {
  return Buffer.from(`${FILE_SET_FORMAT}\0${cluster}\0${backupId}\0${set}`, 'utf8');
}

/** Encrypts what passes (AES-256-GCM); `tag()` once it ended. */
export class SealStream extends Transform {
  private readonly cipher: CipherGCM;
  private authTag: Buffer | null = null;
  constructor(
    key: Buffer,
    readonly iv: Buffer,
    aad: Buffer,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    if (iv.length !== 12) throw new Error('the IV of AES-256-GCM is 12 bytes');
    this.cipher = createCipheriv('aes-256-gcm', key, iv);
    this.cipher.setAAD(aad);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, this.cipher.update(chunk));
  }
  override _flush(cb: TransformCallback): void {
    const last = this.cipher.final();
    this.authTag = this.cipher.getAuthTag();
    cb(null, last.length ? last : undefined);
  }
  tag(): Buffer {
    if (!this.authTag) throw new Error('the archive was not sealed to its end');
    return this.authTag;
  }
}

/** The tag did not verify: the archive was altered, or it is another key's, cluster's, backup's or set's. */
export class ArchiveAuthFailed extends Error {}

/**
 * Reads a stored archive: checks its bytes against the manifest's size and SHA-256 (ChecksumMismatch)
 * and, when it is encrypted, decrypts it and verifies the tag at its end (ArchiveAuthFailed). The
 * output before the end is unauthenticated: it goes to a private staging file that is used only
 * once this stream ended without an error.
 */
export class OpenStream extends Transform {
  private readonly hash = createHash('sha256');
  private n = 0;
  private readonly decipher: DecipherGCM | null;
  constructor(
    private readonly expect: { bytes: number; sha256: string },
    private readonly what: string,
    sealed: { key: Buffer; iv: string; tag: string; aad: Buffer } | null,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    if (sealed) {
      const d = createDecipheriv('aes-256-gcm', sealed.key, Buffer.from(sealed.iv, 'hex'));
      d.setAAD(sealed.aad);
      d.setAuthTag(Buffer.from(sealed.tag, 'hex'));
      this.decipher = d;
    } else this.decipher = null;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.n += chunk.length;
    cb(null, this.decipher ? this.decipher.update(chunk) : chunk);
  }
  override _flush(cb: TransformCallback): void {
    const sum = this.hash.digest('hex');
    if (this.n !== this.expect.bytes) return cb(new ChecksumMismatch(`${this.what}: ${this.n} bytes, the manifest says ${this.expect.bytes}`));
    if (sum !== this.expect.sha256)
      return cb(new ChecksumMismatch(`${this.what}: SHA-256 ${sum.slice(0, 16)}…, the manifest says ${this.expect.sha256.slice(0, 16)}…`));
    if (!this.decipher) return cb();
    try {
      const last = this.decipher.final();
      cb(null, last.length ? last : undefined);
    } catch {
      cb(new ArchiveAuthFailed(`${this.what}: the archive does not authenticate (AES-256-GCM tag): it was altered, or it was sealed for another set`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Putting files in place on the target

/**
 * Move the staged entries into place ($1 staging root, $2 suffix of moved-aside copies, then
 * "<d|f|l> <path>" pairs, parents first). A directory that exists stays (its mode and owner are set
 * afterwards, DIR_ATTRS_SH); anything else in the way of an entry is moved aside to
 * <path><suffix> (or <path><suffix>.N when that is taken), never deleted. A file or symlink
 * already as staged (same bytes, mode and owner; same target) is left as it is. Prints
 * "aside\0<path>\0<to>\0", "placed\0<path>\0", "same\0<path>\0" per entry; stops at the first failure.
 */
export const SWAP_SH = [
  's=$1; sfx=$2; shift 2',
  'aside() { a="$1$sfx"; n=1; while [ -e "$a" ] || [ -L "$a" ]; do a="$1$sfx.$n"; n=$((n+1)); done; ' +
    'mv -T -- "$1" "$a" || exit 1; printf "aside\\0%s\\0%s\\0" "$1" "$a"; }',
  'while [ $# -ge 2 ]; do',
  '  t=$1; p=$2; shift 2; src="$s$p"',
  '  case "$t" in',
  '  d)',
  '    if [ -d "$p" ] && [ ! -L "$p" ]; then printf "same\\0%s\\0" "$p"; continue; fi',
  '    if [ -e "$p" ] || [ -L "$p" ]; then aside "$p"; fi',
  '    mkdir -- "$p" || exit 1; printf "placed\\0%s\\0" "$p";;',
  '  f)',
  '    if [ -f "$p" ] && [ ! -L "$p" ] && cmp -s -- "$src" "$p" && ' +
    '[ "$(stat -c "%a %u %g" -- "$src")" = "$(stat -c "%a %u %g" -- "$p")" ]; then printf "same\\0%s\\0" "$p"; continue; fi',
  '    if [ -e "$p" ] || [ -L "$p" ]; then aside "$p"; fi',
  '    mv -T -- "$src" "$p" || exit 1; printf "placed\\0%s\\0" "$p";;',
  '  l)',
  '    if [ -L "$p" ] && [ "$(readlink -- "$src")" = "$(readlink -- "$p")" ]; then printf "same\\0%s\\0" "$p"; continue; fi',
  '    if [ -e "$p" ] || [ -L "$p" ]; then aside "$p"; fi',
  '    mv -T -- "$src" "$p" || exit 1; printf "placed\\0%s\\0" "$p";;',
  '  *) echo "unknown entry kind $t" >&2; exit 2;;',
  '  esac',
  'done',
].join('\n');

/**
 * Directories' modes and owners from their staged copies ($1 staging root, then paths, deepest
 * first, so a directory made read-only does not stop the ones under it). An owner that cannot be
 * set (not root, not the owner) is reported, not fatal: "owner\0<path>\0".
 */
export const DIR_ATTRS_SH = [
  's=$1; shift',
  'for p in "$@"; do',
  '  chown --reference="$s$p" -- "$p" 2>/dev/null || printf "owner\\0%s\\0" "$p"',
  '  chmod --reference="$s$p" -- "$p" || exit 1',
  'done',
].join('\n');

/** Parse SWAP_SH's output. */
export function parseSwap(text: string): { placed: string[]; same: string[]; aside: { path: string; to: string }[] } {
  const f = text.split('\0');
  const out = { placed: [] as string[], same: [] as string[], aside: [] as { path: string; to: string }[] };
  for (let i = 0; i < f.length;) {
    const w = f[i];
    if (w === 'aside' && i + 2 < f.length) {
      out.aside.push({ path: f[i + 1], to: f[i + 2] });
      i += 3;
    } else if ((w === 'placed' || w === 'same') && i + 1 < f.length) {
      out[w].push(f[i + 1]);
      i += 2;
    } else i += 1;
  }
  return out;
}

/** Argument batches that keep each command line well inside what a shell takes. */
export function batches<T>(items: readonly T[], size: (x: T) => number, max = 64 * 1024): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let n = 0;
  for (const x of items) {
    const s = size(x);
    if (cur.length && n + s > max) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(x);
    n += s;
  }
  if (cur.length) out.push(cur);
  return out;
}
