/**
 * File sets (topology `backup.files`): what their activities take and return, shared by the
 * activities, the workflows and the client. Plain JSON that lands in workflow history: no key and
 * no file content belongs here (an encrypted set's digests are keyed, see FileSetManifest.digest).
 *
 * A file set is kept with the base backup of the same backup id, so retention, deletion and the
 * store treat them as one backup:
 *   <backup.root>/<cluster>/<backupId>/files/<set>/files.tar | files.tar.enc, files-manifest.json
 *   <store prefix><cluster>/<backupId>/files/<set>/…          (the manifest object last)
 * While it is written the directory is <set>.partial; it is renamed with its manifest in it.
 */

export const FILE_SET_FORMAT = 'switchyard-file-set/1';
export const FILE_SET_MANIFEST = 'files-manifest.json';
export const FILE_SET_ARCHIVE_PLAIN = 'files.tar';
export const FILE_SET_ARCHIVE_SEALED = 'files.tar.enc';

export type FileSetMode = 'keep-permissions' | 'contents-only';

export interface FileSetEntry {
  /** Absolute path on the host it was backed up from. */
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  uid: number;
  gid: number;
  /** Owner and group names on that host (find %u/%g: the number when it has no name). */
  user: string;
  group: string;
  /** Permission bits, 4 octal digits ("0600", "2755"). */
  mode: string;
  /** Files: their size; 0 otherwise. */
  bytes: number;
  /** Files: SHA-256 of the content (hex); keyed for an encrypted set (FileSetManifest.digest); null otherwise. */
  sha256: string | null;
  /** Symlinks: where they point; null otherwise. */
  target: string | null;
}

/** How an encrypted set's archive was sealed (never the key: its id, derived from it, tells a wrong key from damage). */
export interface FileSetEncryption {
  algorithm: 'aes-256-gcm';
  /** 12 bytes, hex. */
  iv: string;
  /** The GCM authentication tag, 16 bytes, hex. */
  tag: string;
  /** The key's id (16 hex digits of an HMAC of a fixed label under the key). */
  keyId: string;
  /** The secret reference the key was read from, in words ("file /…", "env X"): what to restore it with. */
  keyRef: string;
}

/** files-manifest.json */
export interface FileSetManifest {
  format: typeof FILE_SET_FORMAT;
  cluster: string;
  backupId: string;
  set: string;
  /** The host it was backed up from. */
  host: string;
  /** The set's declared paths when it was backed up. */
  paths: string[];
  mode: FileSetMode;
  createdAt: string;
  /** Every file, directory and symlink under the declared paths, sorted by path. */
  entries: FileSetEntry[];
  files: number;
  /** Sum of the files' sizes. */
  totalBytes: number;
  /** "sha256": entries hold the content's SHA-256; "hmac-sha256": HMAC-SHA256 (under a key derived from the set's key) of that hex digest. */
  digest: 'sha256' | 'hmac-sha256';
  /** The archive as stored (ciphertext when encrypted): its name beside the manifest, size and SHA-256. */
  archive: { name: string; bytes: number; sha256: string };
  encryption: FileSetEncryption | null;
  /** In the store's copy of the manifest: where the archive's object is. */
  store?: { url: string; key: string; versionId: string | null; uploadedAt: string };
}

export interface FileSetBackupInput {
  cluster: string;
  backupId: string;
  set: string;
}

export interface FileSetBackupResult {
  backupId: string;
  set: string;
  host: string;
  /** <root>/<cluster>/<backupId>/files/<set> on the backup host. */
  dir: string;
  files: number;
  dirs: number;
  symlinks: number;
  totalBytes: number;
  archiveBytes: number;
  encrypted: boolean;
  /** false: the set was already complete (a resumed run). */
  created: boolean;
  /** Its copy in the store (absent without backup.store). */
  store: { url: string; uploaded: boolean } | null;
  durationMs: number;
  detail: string;
}

/** One backup's copy of one set, as the catalog finds it. */
export interface FileSetEntrySummary {
  backupId: string;
  set: string;
  host: string;
  createdAt: string;
  files: number;
  totalBytes: number;
  encrypted: boolean;
  location: ('host' | 'store')[];
}

export interface FileSetRestoreInput {
  cluster: string;
  backupId: string;
  set: string;
  /** The host the files are put back on (a key into `hosts`). */
  target: string;
  /** Only these paths (each within the set's declared paths) and what is under them; default the whole set. */
  paths?: string[];
  /** UTC stamp naming the moved-aside copies (<path>.switchyard-<stamp>); the workflow's, so a retry uses the same. */
  stamp: string;
}

/** How the target's current files compare with the backup's (a dry run, and before a restore). */
export interface FileSetPlan {
  backupId: string;
  set: string;
  target: string;
  /** Where the set is read from: the backup host, or the store when the host no longer has it. */
  from: 'host' | 'store';
  encrypted: boolean;
  /** Entries the restore puts back (after --path selection). */
  restoring: number;
  /** Paths that exist on the target and differ from the backup (content, type, mode or owner): moved aside. */
  differ: string[];
  /** Paths missing on the target: created. */
  missing: string[];
  /** Paths already as in the backup: left as they are. */
  same: number;
  detail: string;
}

export interface FileSetRestoreResult {
  backupId: string;
  set: string;
  target: string;
  from: 'host' | 'store';
  /** Files, directories and symlinks put in place from the backup. */
  placed: string[];
  /** What was there before, moved aside (never deleted). */
  movedAside: { path: string; to: string }[];
  /** Already as in the backup: left untouched. */
  unchanged: number;
  /** Owners or modes that could not be kept (the SSH user may not chown): each with what it is now. */
  notKept: { path: string; what: 'owner' | 'mode'; expected: string; actual: string }[];
  durationMs: number;
  detail: string;
}

export interface FileSetActivities {
  /** Archive one set on its host into the backup's directory on the backup host (encrypted in the worker when the set says so), then the store. */
  fileSetBackup(input: FileSetBackupInput): Promise<FileSetBackupResult>;
  /** Every backup's file sets, on the backup host and in the store. */
  fileSetList(input: { cluster: string }): Promise<FileSetEntrySummary[]>;
  /** Read-only: refuses a path outside the set; compares the target's files with the backup's. */
  fileSetPlan(input: Omit<FileSetRestoreInput, 'stamp'>): Promise<FileSetPlan>;
  /** Stage, authenticate, extract and verify the set on the target, then move the existing files aside and the restored ones in. */
  fileSetRestore(input: FileSetRestoreInput): Promise<FileSetRestoreResult>;
}
