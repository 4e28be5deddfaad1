/**
 * Restoring a PostgreSQL base backup onto a database node, in two steps so that a bad
 * backup changes nothing:
 *
 * - pgRestoreStage, while PostgreSQL still runs: read the backup's switchyard-manifest.json on the
 *   backup server, copy every file it lists into <dataDir>.switchyard-restore-<backupId>/ on the
 *   node's host (`cp` there when the backup server is that host; otherwise `cat` on the backup
 *   server piped through the worker into `cat >` on the node's host, streamed with backpressure
 *   and hashed on the way, never held in memory: stream-copy.ts), then check the staged files
 *   against the manifest on the node's host (verifyOnHost). What it accepts and writes is in
 *   pg-restore-plan.ts.
 * - pgRestoreSwap, with PostgreSQL stopped: extract base.tar.gz and pg_wal.tar.gz into a fresh
 *   directory (mode 0700) inside the staging directory, drop standby.signal/recovery.signal (it
 *   starts as a primary at the end of the backup), write a marker naming the backup, move the
 *   data directory aside (<dataDir>.switchyard-<UTC stamp>, never deleted), move the new one into
 *   place and remove the staging directory. pgStart (postgres/lifecycle.ts) starts it.
 *
 * Commands are argument vectors (quoted by ssh/quote.ts) or a few fixed `sh -c` scripts that get
 * every path and value as a positional argument.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { DbNodeConfig } from '../../topology/schema';
import { backupDir, checkBackupId, MANIFEST_FILE, parseSizes, verifyOnHost } from './files';
import type {
  PgStoreFetchResult,
  PgBackupFile,
  PgBackupManifest,
  PgBackupVerifyResult,
  PgRestoreDiscardResult,
  PgRestoreNodeInput,
  PgRestoreStageResult,
  PgRestoreSwapResult,
} from '../../contract/backup';
import { backupPaths, parsePgMajor } from './pg-catalog';
import { ensureOnHost } from './store-backup';
import { configurePitr, stageWal } from './pg-restore-pitr';
import {
  BASE_TAR,
  markerText,
  PART_SUFFIX,
  parseMarker,
  parseRestorableManifest,
  RESTORED_MARKER,
  restoreSpaceNeeded,
  sizeProblems,
  stagingDirName,
  WAL_TAR,
} from './pg-restore-plan';
import { streamFile } from './stream-copy';
import { heartbeat } from '../activity-context';
import { configError } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { brief, execArgv, mustExec, onHost, type OpenSession } from '../ssh/exec';
import { requireFreeSpace } from '../ssh/free-space';
import { readWholeText } from '../ssh/files';
import { holdHostLock } from '../ssh/host-lock';
import { formatBytes } from '../../contract/format';
import { moveAsideName } from '../postgres/data-dir';
import { pgCtlDataDirStatus } from '../postgres/pg-ctl-status';
import { nodeWhere } from '../postgres/shared';
import { Errors } from '../../contract/errors';
import { inCLocale, shellScript } from '../ssh/argv';
import { pgTool } from '../postgres/paths';

/** Inside the staging directory: where the backup is extracted before it is moved into place. */
const EXTRACT_SUBDIR = 'data';

/** Bounds on single commands: copying, hashing and extracting a large backup take long (they heartbeat). */
const COPY_TIMEOUT_SECONDS = 6 * 3600;
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Fixed scripts: paths and values as positional arguments

/** Prints "dir", "missing" or "other". */
const KIND_SH = 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ] || [ -L "$1" ]; then echo other; else echo missing; fi';
/** The staging directory, private to the OS user (made with its parents). */
const MKDIR_PRIVATE_SH = 'umask 077; mkdir -p -- "$1" && chmod 700 -- "$1"';
/** Copy on one host: into a part file, renamed when complete. */
const CP_SH = 'umask 077; cp -- "$1" "$2.switchyard-part" && mv -f -- "$2.switchyard-part" "$2"';
/**
 * Extract the staged backup into <staging>/data: fresh directory 0700, base.tar.gz, then the WAL
 * into pg_wal, signal files removed (reported), PG_VERSION required.
 */
const EXTRACT_SH = [
  'set -e',
  's="$1"; x="$s/data"',
  'rm -rf -- "$x"',
  'mkdir -m 0700 -- "$x"',
  'tar -xzf "$s/base.tar.gz" -C "$x"',
  'mkdir -p -m 0700 -- "$x/pg_wal"',
  'tar -xzf "$s/pg_wal.tar.gz" -C "$x/pg_wal"',
  'for f in standby.signal recovery.signal; do if [ -e "$x/$f" ]; then rm -f -- "$x/$f"; echo "removed $f"; fi; done',
  'if [ ! -f "$x/PG_VERSION" ]; then echo "no PG_VERSION in the extracted base backup" >&2; exit 1; fi',
].join('\n');
/** Write the marker atomically: $1 the path, the rest its lines. */
const WRITE_MARKER_SH = 'm="$1"; shift; umask 077; printf "%s\\n" "$@" > "$m.tmp" && mv -f -- "$m.tmp" "$m"';
/**
 * The swap itself. $1 data dir, $2 staging dir, $3 move-aside name, $4 "keep-conf" to carry the
 * node's own postgresql.conf, pg_hba.conf and pg_ident.conf over (when they live in the data dir).
 * Moves the data dir aside (suffix .2, .3 … when the name is taken), records where in the marker,
 * moves the extracted directory into place, removes the staging dir; prints the aside name.
 */
const SWAP_SH = [
  'set -e',
  'd="$1"; s="$2"; aside="$3"; x="$s/data"; m="$x/switchyard-restored-from"',
  'if [ "$4" = keep-conf ] && [ -d "$d" ]; then for f in postgresql.conf pg_hba.conf pg_ident.conf; do ' +
    'if [ -f "$d/$f" ]; then cp -p -- "$d/$f" "$x/$f"; echo "kept $f" >&2; fi; done; fi',
  'moved=""',
  'if [ -e "$d" ] || [ -L "$d" ]; then n="$aside"; i=1; ' +
    'while [ -e "$n" ] || [ -L "$n" ]; do i=$((i+1)); n="$aside.$i"; done; mv -T -- "$d" "$n"; moved="$n"; fi',
  'printf "moved-aside=%s\\n" "$moved" >> "$m"',
  'mv -T -- "$x" "$d"',
  'rm -rf -- "$s"',
  'printf "%s\\n" "$moved"',
].join('\n');

async function kindOf(open: OpenSession, path: string): Promise<'dir' | 'missing' | 'other'> {
  const out = (await mustExec(open, shellScript(KIND_SH, path), `looking at ${path}`)).stdout.trim();
  return out === 'dir' || out === 'missing' ? out : 'other';
}

/** The node's PostgreSQL major version from `postgres --version`; null when it cannot be read. */
async function nodeMajor(open: OpenSession, n: DbNodeConfig): Promise<{ major: number | null; text: string }> {
  const r = await execArgv(open, inCLocale([pgTool(n, 'postgres'), '--version']), 30);
  const major = parsePgMajor(r.stdout);
  return major !== null ? { major, text: r.stdout.trim() } : { major: null, text: `postgres --version ${brief(r)}` };
}

function corrupt(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, Errors.BackupCorrupt);
}

// ---------------------------------------------------------------------------------------------

export function pgRestoreActivities(rt: Runtime) {
  const target = (call: Call, input: PgRestoreNodeInput) => {
    const backupId = checkBackupId(input?.backupId);
    const n = call.top.node(input.cluster, input.node);
    return { backupId, n, staging: stagingDirName(n.dataDir, backupId), w: nodeWhere(input.node, n) };
  };

  const backupOf = (call: Call, cluster: string) => {
    const b = call.top.cluster(cluster).backup;
    if (!b) throw configError(`cluster "${cluster}" has no backup section (backup.host, backup.root): there are no backups to restore from`);
    return b;
  };

  /** The manifest, after checking that every file it lists is on the backup server with its size. */
  const readManifest = async (open: OpenSession, dir: string, input: PgRestoreNodeInput): Promise<PgBackupManifest> => {
    const at = `${open.name}:${dir}`;
    const kind = await kindOf(open, dir);
    if (kind !== 'dir') {
      const partial = (await kindOf(open, `${dir}.partial`)) === 'dir';
      throw ApplicationFailure.nonRetryable(
        partial
          ? `backup ${input.backupId} of cluster "${input.cluster}" is not complete: ${at}.partial exists (being made, or left by an interrupted backup)`
          : `backup ${input.backupId} of cluster "${input.cluster}" not found: ${at} ${kind === 'missing' ? 'does not exist' : 'is not a directory'}`,
        Errors.BackupNotFound,
      );
    }
    const text = await readWholeText(open, posix.join(dir, MANIFEST_FILE), MAX_MANIFEST_BYTES);
    if (text === null) {
      throw ApplicationFailure.nonRetryable(
        `backup ${input.backupId} of cluster "${input.cluster}" is not complete: ${at} has no ${MANIFEST_FILE} (it is written last)`,
        Errors.BackupNotFound,
      );
    }
    const m = parseRestorableManifest(text, input.cluster, input.backupId, at);
    const ls = await mustExec(open, ['find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%f\\t%s\\n'], `listing ${dir}`);
    const problems = sizeProblems(m.files, parseSizes(ls.stdout));
    if (problems.length) throw corrupt(`backup ${input.backupId} at ${at} does not match its manifest: ${problems.join('; ')}`);
    return m;
  };

  return {
    /**
     * Copy a backup's files to <dataDir>.switchyard-restore-<backupId>/ on the node's host and
     * check them there against the manifest; PostgreSQL keeps running. Idempotent: a staging
     * directory whose files verify is reused, one with some files right keeps those. A backup
     * that does not match its manifest is a non-retryable BackupCorrupt naming the file and the
     * problem, and leaves no staging directory behind.
     */
    pgRestoreStage: rt.activity(async (input: PgRestoreNodeInput, call): Promise<PgRestoreStageResult> => {
      const t0 = Date.now();
      const { backupId, n, staging, w } = target(call, input);
      const b = backupOf(call, input.cluster);
      const src = backupDir(b.root, input.cluster, backupId);
      const sameHost = b.host === n.sshHost;
      let manifest: PgBackupManifest;
      let fetched: PgStoreFetchResult | null = null;
      try {
        manifest = await onHost(rt, call, input.cluster, b.host, async (open) => {
          // Only in the store (the backup host lost it): downloaded onto the backup host first, checked file by file.
          const got = await ensureOnHost(rt, call, open, input.cluster, backupId, backupPaths(b.root, input.cluster, backupId));
          fetched = got.fetched;
          await got.lock?.release();
          return readManifest(open, src, input);
        });
      } catch (err) {
        // A corrupt backup leaves nothing staged, not even a copy an earlier attempt made.
        if (err instanceof ApplicationFailure && err.type === Errors.BackupCorrupt) {
          await onHost(rt, call, input.cluster, n.sshHost, (dst) => execArgv(dst, ['rm', '-rf', '--', staging], COPY_TIMEOUT_SECONDS)).catch(() => undefined);
        }
        throw err;
      }
      const files = manifest.files;
      const total = files.reduce((s, f) => s + f.bytes, 0);
      const base = { backupId, node: input.node, stagingDir: staging, fetched };

      // In use while it is copied: retention keeps the backup until the copy is staged (src/activities/backup/pg-catalog.ts).
      return onHost(rt, call, input.cluster, b.host, async (bopen) => {
        const inUse = await holdHostLock(bopen, posix.join(src, MANIFEST_FILE), COPY_TIMEOUT_SECONDS, `the restore of backup ${backupId}`, { shared: true });
        try {
          const staged = await stage();
          if (input.targetTime === undefined) return staged;
          // Point in time: the archive's WAL from the backup's start on, beside the staged backup.
          const wal = await stageWal(rt, call, {
            cluster: input.cluster,
            backupHost: b.host,
            nodeHost: n.sshHost,
            root: b.root,
            staging,
            startLsn: manifest.startLsn,
          });
          return { ...staged, wal: { files: wal.files, bytes: wal.bytes }, detail: `${staged.detail}; ${wal.detail}` };
        } finally {
          await inUse.release();
        }
      });

      function stage(): Promise<PgRestoreStageResult> {
        return onHost(rt, call, input.cluster, n.sshHost, async (dst): Promise<PgRestoreStageResult> => {
          const ver = await nodeMajor(dst, n);
          if (ver.major !== null && ver.major !== manifest.pgMajor) {
            throw ApplicationFailure.nonRetryable(
              `backup ${backupId} is of PostgreSQL ${manifest.pgMajor} (${manifest.pgVersion}), but ${w} runs PostgreSQL ${ver.major} (${ver.text}): ` +
                `a base backup restores only onto the same major version`,
              Errors.PgVersionMismatch,
            );
          }
          const notes: string[] = [];
          let todo: readonly PgBackupFile[] = files;
          /** Refuse before anything is written when the filesystem cannot take the copy and its extraction. */
          const checkSpace = async (toCopy: readonly PgBackupFile[]) => {
            const space = restoreSpaceNeeded(
              manifest,
              toCopy.reduce((sum, f) => sum + f.bytes, 0),
            );
            notes.push(
              await requireFreeSpace(
                dst,
                staging,
                space.needBytes,
                (f) =>
                  `not enough free space on ${n.sshHost} to restore backup ${backupId} beside ${n.dataDir}: ` +
                  `it needs ${formatBytes(space.needBytes + f.reserveBytes)} (${space.how}), ` +
                  `the filesystem of ${f.dir} has ${formatBytes(f.freeBytes)} free. ` +
                  `Nothing was copied and ${input.node} is unchanged; free space there (moved-aside data directories ` +
                  `${n.dataDir}.switchyard-* are kept until a person removes them) or restore onto another node.`,
              ),
            );
          };
          const kind = await kindOf(dst, staging);
          if (kind === 'other')
            throw configError(`${staging} on ${n.sshHost} exists and is not a directory: move it away before staging backup ${backupId} there`);
          if (kind === 'dir') {
            const v = await verifyOnHost(dst, staging, backupId, files, COPY_TIMEOUT_SECONDS);
            if (v.ok) {
              const durationMs = Date.now() - t0;
              return {
                ...base,
                verify: v,
                bytesCopied: 0,
                durationMs,
                detail: `backup ${backupId} was already staged in ${staging} on ${n.sshHost}: reused (${v.detail})`,
              };
            }
            // Keep what matches; what is wrong or left over from an interrupted copy goes.
            const wrong = v.problems.filter((p) => p.problem !== 'missing').map((p) => posix.join(staging, p.file));
            if (wrong.length) await mustExec(dst, ['rm', '-f', '--', ...wrong], `removing ${wrong.length} stale files in ${staging}`);
            const redo = new Set(v.problems.map((p) => p.file));
            todo = files.filter((f) => redo.has(f.name));
            notes.push(`${staging} existed: kept ${files.length - todo.length} of ${files.length} files that match the manifest`);
            await checkSpace(todo);
          } else {
            await checkSpace(todo);
            await mustExec(dst, shellScript(MKDIR_PRIVATE_SH, staging), `making ${staging}`);
          }

          const removeStaging = async () => {
            try {
              await execArgv(dst, ['rm', '-rf', '--', staging], COPY_TIMEOUT_SECONDS);
            } catch {
              /* best effort: the failure being reported matters more */
            }
          };

          let bytesCopied = 0;
          try {
            if (sameHost) {
              for (const f of todo) {
                heartbeat({ node: input.node, copying: f.name, bytes: bytesCopied, of: total });
                await mustExec(
                  dst,
                  shellScript(CP_SH, posix.join(src, f.name), posix.join(staging, f.name)),
                  `copying ${f.name} into ${staging}`,
                  COPY_TIMEOUT_SECONDS,
                );
                bytesCopied += f.bytes;
              }
            } else if (todo.length) {
              await onHost(rt, call, input.cluster, b.host, async (from) => {
                for (const f of todo) {
                  const part = posix.join(staging, f.name + PART_SUFFIX);
                  const done = bytesCopied;
                  heartbeat({ node: input.node, copying: f.name, bytes: done, of: total });
                  const s = await streamFile(from, dst, posix.join(src, f.name), part, COPY_TIMEOUT_SECONDS, (bytes) =>
                    heartbeat({ node: input.node, copying: f.name, bytes: done + bytes, of: total }),
                  );
                  if (s.bytes !== f.bytes || s.sha256 !== f.sha256) {
                    const what =
                      s.bytes !== f.bytes
                        ? `${f.name} has ${s.bytes} bytes, the manifest says ${f.bytes}`
                        : `${f.name} has SHA-256 ${s.sha256.slice(0, 16)}…, the manifest says ${f.sha256.slice(0, 16)}…`;
                    throw corrupt(`backup ${backupId} does not match its manifest: ${what} (as read from ${b.host}:${src})`);
                  }
                  await mustExec(dst, ['mv', '-f', '--', part, posix.join(staging, f.name)], `renaming ${part}`);
                  bytesCopied += s.bytes;
                }
              });
            }
            heartbeat({ node: input.node, step: 'verify', bytes: bytesCopied, of: total });
            const v = await verifyOnHost(dst, staging, backupId, files, COPY_TIMEOUT_SECONDS);
            if (!v.ok) {
              // The backup itself, or the copy? Only the first is for a person.
              const sv: PgBackupVerifyResult = await onHost(rt, call, input.cluster, b.host, (open) =>
                verifyOnHost(open, src, backupId, files, COPY_TIMEOUT_SECONDS),
              );
              if (!sv.ok) throw corrupt(`${sv.detail} (on ${b.host} in ${src})`);
              await removeStaging();
              throw new Error(
                `the copy of backup ${backupId} staged in ${staging} on ${n.sshHost} does not match the manifest although the backup on ${b.host} does: ` +
                  `${v.detail}; staging removed, a retry copies it again`,
              );
            }
            const durationMs = Date.now() - t0;
            const how = sameHost ? `cp on ${n.sshHost}` : `streaming from ${b.host} through the worker`;
            rt.log.info('backup staged for restore', { cluster: input.cluster, node: input.node, backupId, stagingDir: staging, bytesCopied, durationMs });
            return {
              ...base,
              verify: v,
              bytesCopied,
              durationMs,
              detail:
                `staged backup ${backupId} (${files.length} files, ${formatBytes(total)}) in ${staging} on ${n.sshHost}: copied ` +
                `${todo.length} file${todo.length === 1 ? '' : 's'} (${formatBytes(bytesCopied)}) by ${how} ` +
                `in ${(durationMs / 1000).toFixed(1)} s; ${[...notes, v.detail].join('; ')}`,
            };
          } catch (err) {
            if (err instanceof ApplicationFailure && err.type === Errors.BackupCorrupt) await removeStaging();
            throw err;
          }
        });
      }
    }),

    /**
     * Take a staged copy away that will not be swapped in (a restore rejected at replace-data), so
     * it does not hold the node's disk. Only <dataDir>.switchyard-restore-<backupId> is removed;
     * the data directory and moved-aside ones are never touched. Idempotent: nothing staged is
     * removed:false.
     */
    pgRestoreDiscard: rt.activity(async (input: PgRestoreNodeInput, call): Promise<PgRestoreDiscardResult> => {
      const { backupId, n, staging } = target(call, input);
      const base = { backupId, node: input.node, stagingDir: staging };
      return onHost(rt, call, input.cluster, n.sshHost, async (open): Promise<PgRestoreDiscardResult> => {
        const kind = await kindOf(open, staging);
        if (kind === 'missing') return { ...base, removed: false, detail: `nothing staged for backup ${backupId} on ${n.sshHost} (${staging} does not exist)` };
        if (kind === 'other') throw configError(`${staging} on ${n.sshHost} is not a directory: not removing it; look at it and move it away`);
        await mustExec(open, ['rm', '-rf', '--', staging], `removing the staged copy ${staging}`, COPY_TIMEOUT_SECONDS);
        if ((await kindOf(open, staging)) !== 'missing') throw new Error(`${staging} on ${n.sshHost} is still there after rm -rf`);
        rt.log.info('staged restore copy removed', { cluster: input.cluster, node: input.node, backupId, stagingDir: staging });
        return { ...base, removed: true, detail: `removed the staged copy of backup ${backupId} (${staging}) on ${n.sshHost}` };
      });
    }),

    /**
     * Replace the node's data directory with the staged backup; PostgreSQL must be stopped
     * (PostgresRunning otherwise). The data directory is moved aside (never deleted), the backup
     * extracted into a fresh one (0700) without standby.signal/recovery.signal, so the node
     * starts as a primary at the end of the backup; the staging directory is removed. Idempotent:
     * with the staging directory gone and the data directory marked as restored from this backup,
     * changed:false.
     */
    pgRestoreSwap: rt.activity(async (input: PgRestoreNodeInput, call): Promise<PgRestoreSwapResult> => {
      const t0 = Date.now();
      const { backupId, n, staging, w } = target(call, input);
      const base = { backupId, node: input.node, dataDir: n.dataDir };
      return onHost(rt, call, input.cluster, n.sshHost, async (open): Promise<PgRestoreSwapResult> => {
        const st = await pgCtlDataDirStatus(open, n, { checkPostmasterPid: true });
        const markerPath = posix.join(n.dataDir, RESTORED_MARKER);
        const readMarker = async (path: string) => {
          const text = await readWholeText(open, path, 64 * 1024);
          return text === null ? null : parseMarker(text);
        };
        const current = st.dataDirExists ? await readMarker(markerPath) : null;
        const stagedKind = await kindOf(open, staging);
        // Already done (a retried or repeated swap): nothing is touched, whether it runs by now or not.
        if (stagedKind !== 'dir' && current?.backupId === backupId) {
          return {
            ...base,
            movedAside: current.movedAside,
            changed: false,
            durationMs: Date.now() - t0,
            detail:
              `${n.dataDir} on ${n.sshHost} already holds backup ${backupId} ` +
              `(restored ${current.restoredAt ?? 'earlier'}${current.movedAside ? `; the old one is at ${current.movedAside}` : ''}) ` +
              `and nothing is staged: not swapped again`,
          };
        }
        if (st.running === true) {
          throw ApplicationFailure.nonRetryable(
            `${w} is running (pg_ctl status: ${st.text}): stop it first (pgFence) before its data directory is replaced with backup ${backupId}`,
            Errors.PostgresRunning,
          );
        }
        if (st.running === null) throw new Error(`cannot tell whether PostgreSQL runs on ${w} (pg_ctl status: ${st.text}): not replacing its data directory`);
        if (stagedKind !== 'dir') {
          throw ApplicationFailure.nonRetryable(
            `backup ${backupId} is not staged for ${w}: ` +
              `${staging} on ${n.sshHost} ${stagedKind === 'missing' ? 'does not exist' : 'is not a directory'}; ` +
              `run pgRestoreStage first${current ? ` (${n.dataDir} holds backup ${current.backupId})` : ''}`,
            Errors.RestoreNotStaged,
          );
        }
        for (const f of [BASE_TAR, WAL_TAR]) {
          if ((await execArgv(open, ['test', '-f', posix.join(staging, f)], 15)).exitCode !== 0) {
            throw ApplicationFailure.nonRetryable(
              `${staging} on ${n.sshHost} has no ${f}: the staging of backup ${backupId} is incomplete; run pgRestoreStage again`,
              Errors.RestoreNotStaged,
            );
          }
        }

        const notes: string[] = [];
        const x = posix.join(staging, EXTRACT_SUBDIR);
        const extracted = (await kindOf(open, x)) === 'dir' ? await readMarker(posix.join(x, RESTORED_MARKER)) : null;
        if (extracted?.backupId === backupId) {
          notes.push(`reused the extraction in ${x} from an earlier attempt`);
        } else {
          heartbeat({ node: input.node, step: 'extract' });
          const r = await execArgv(open, shellScript(EXTRACT_SH, staging), COPY_TIMEOUT_SECONDS);
          if (r.exitCode !== 0) {
            await execArgv(open, ['rm', '-rf', '--', x], COPY_TIMEOUT_SECONDS).catch(() => undefined);
            throw new Error(`extracting backup ${backupId} in ${x} on ${n.sshHost} ${brief(r)}`);
          }
          const removed = r.stdout.split('\n').filter((l) => l.startsWith('removed '));
          const gone = removed.map((l) => l.slice('removed '.length)).join(' and ');
          notes.push(`extracted ${BASE_TAR} and ${WAL_TAR}${removed.length ? `; ${gone} removed (starts as a primary)` : ''}`);
          await mustExec(open, shellScript(WRITE_MARKER_SH, posix.join(x, RESTORED_MARKER), ...markerText(input, rt.now())), `writing ${RESTORED_MARKER}`);
        }

        if (input.targetTime !== undefined) notes.push(await configurePitr(open, staging, x, n.dataDir, input.targetTime));
        heartbeat({ node: input.node, step: 'swap' });
        const keepConf = !n.configDir || posix.normalize(n.configDir) === posix.normalize(n.dataDir);
        const sw = await mustExec(
          open,
          shellScript(SWAP_SH, n.dataDir, staging, moveAsideName(n.dataDir, rt.now()), keepConf ? 'keep-conf' : ''),
          `moving backup ${backupId} into ${n.dataDir}`,
          COPY_TIMEOUT_SECONDS,
        );
        const movedAside = sw.stdout.trim() || null;
        const kept = sw.stderr
          .split('\n')
          .filter((l) => l.startsWith('kept '))
          .map((l) => l.slice('kept '.length));
        if (kept.length) notes.push(`kept the node's own ${kept.join(', ')}`);
        const mode = (await execArgv(open, ['stat', '-c', '%a', n.dataDir], 15)).stdout.trim();
        if (mode !== '700' && mode !== '750') {
          await mustExec(open, ['chmod', '0700', n.dataDir], `chmod 0700 ${n.dataDir}`);
          notes.push(`mode was ${mode || '?'}, set to 0700`);
        }
        const durationMs = Date.now() - t0;
        rt.log.info('data directory restored from backup', { cluster: input.cluster, node: input.node, backupId, movedAside, durationMs });
        return {
          ...base,
          movedAside,
          changed: true,
          durationMs,
          detail: `${n.dataDir} on ${n.sshHost} now holds backup ${backupId}; ${
            movedAside
              ? `the previous data directory was moved aside to ${movedAside}`
              : `there was no data directory (an interrupted earlier attempt may have moved it aside to ${n.dataDir.replace(/\/+$/, '')}.switchyard-<stamp>)`
          }; ${notes.join('; ')}; staging removed. Start it (pgStart): it recovers to the end of the backup and runs as a primary`,
        };
      });
    }),
  };
}
