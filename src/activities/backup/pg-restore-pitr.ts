/**
 * A point-in-time restore onto a database node (restore --target-time): the WAL archive's segments
 * from the backup's start on are staged beside the backup (<staging>/pitr-wal, from the backup
 * host: cp there, else streamed through the worker and hashed); the swap moves them into the new
 * data directory (switchyard-pitr-wal) and sets a targeted recovery there (recovery.signal,
 * restore_command over those files, recovery_target_time, action promote, timeline latest);
 * pgRestorePitrFinish waits until the node has replayed to the target and promoted, then resets
 * those settings (ALTER SYSTEM RESET: a later standby.signal must not stop at the old target) and
 * removes the segments.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { PgRestoreNodeInput, PgRestorePitrFinishResult } from '../../contract/backup';
import { parseSegmentName, segnoOfLsn } from '../../contract/wal-archive';
import { Errors } from '../../contract/errors';
import { formatBytes } from '../../contract/format';
import { errorMessage, heartbeat, sleep } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { withPgClient } from '../postgres/connect';
import { pgCtlStatus } from '../postgres/pg-ctl-status';
import { execArgv, mustExec, onHost, type OpenSession } from '../ssh/exec';
import { shellScript } from '../ssh/argv';
import { confQuote } from '../postgres/standby-config';
import { pgTimestamp } from './pg-drill-config';
import { streamFile } from './stream-copy';
import { walPaths } from './wal-archive';

/** In the staging directory, then in the data directory. */
export const STAGED_WAL_DIR = 'pitr-wal';
export const DATA_WAL_DIR = 'switchyard-pitr-wal';
/** The settings a point-in-time restore adds to postgresql.auto.conf, and resets once promoted. */
export const PITR_SETTINGS = ['restore_command', 'recovery_target_time', 'recovery_target_action', 'recovery_target_timeline'] as const;
const WAIT_LIMIT_MS = 6 * 3600_000;

/** Files of the archive: "<name>\t<size>". */
const LIST_SH = ['[ -d "$1" ] || exit 0', 'find "$1" -mindepth 1 -maxdepth 1 -type f ! -name ".*" -printf "%f\\t%s\\n"'].join('\n');

/**
 * Which archive files a replay from `startLsn` needs: every timeline history file, and every
 * segment (any timeline) from the one holding startLsn on; a segment still being written
 * (<name>.partial) is taken under its plain name, unless the finished one is there too.
 */
export function walNeeded(names: readonly string[], startLsn: string): { from: string; as: string }[] {
  const first = segnoOfLsn(startLsn);
  const plain = new Set(names.filter((n) => !n.endsWith('.partial')));
  const out: { from: string; as: string }[] = [];
  for (const n of [...names].sort()) {
    if (/^[0-9A-F]{8}\.history$/.test(n)) out.push({ from: n, as: n });
    const s = parseSegmentName(n);
    if (!s || s.segno < first) continue;
    if (n.endsWith('.partial')) {
      const as = n.slice(0, -'.partial'.length);
      if (!plain.has(as)) out.push({ from: n, as });
    } else out.push({ from: n, as: n });
  }
  return out;
}

/** Lines appended to the restored postgresql.auto.conf. */
export function pitrAutoConf(dataDir: string, targetTime: string): string {
  const wal = posix.join(dataDir, DATA_WAL_DIR).replace(/"/g, '');
  return [
    `# switchyard point-in-time restore to ${targetTime}: reset once promoted`,
    `restore_command = ${confQuote(`cp "${wal}/%f" "%p"`)}`,
    `recovery_target_time = ${confQuote(pgTimestamp(targetTime))}`,
    `recovery_target_action = 'promote'`,
    `recovery_target_timeline = 'latest'`,
    '',
  ].join('\n');
}

/** Stage the archive's segments a replay from the backup's start needs into <staging>/pitr-wal on the node's host. */
export async function stageWal(
  rt: Runtime,
  call: Call,
  o: { cluster: string; backupHost: string; nodeHost: string; root: string; staging: string; startLsn: string },
): Promise<{ files: number; bytes: number; detail: string }> {
  const archive = walPaths(o.root, o.cluster).dir;
  const want = await onHost(rt, call, o.cluster, o.backupHost, async (open) => {
    const ls = await mustExec(open, shellScript(LIST_SH, archive), `listing ${archive}`);
    const names = ls.stdout
      .split('\n')
      .map((l) => l.split('\t')[0])
      .filter(Boolean);
    return walNeeded(names, o.startLsn);
  });
  if (!want.some((w) => parseSegmentName(w.as)))
    throw ApplicationFailure.nonRetryable(
      `the WAL archive in ${archive} on ${o.backupHost} holds no segment from the backup's start (${o.startLsn}) on: nothing to replay to a point in time ` +
        `(is the walArchive workflow running? \`switchyard archive ${o.cluster}\`)`,
      Errors.BackupNotFound,
    );
  const dest = posix.join(o.staging, STAGED_WAL_DIR);
  let bytes = 0;
  await onHost(rt, call, o.cluster, o.nodeHost, async (dst) => {
    await mustExec(dst, ['rm', '-rf', '--', dest], `clearing ${dest}`);
    await mustExec(dst, ['mkdir', '-m', '700', '--', dest], `making ${dest}`);
    if (o.backupHost === o.nodeHost) {
      for (const w of want) {
        heartbeat({ staging: w.as });
        await mustExec(dst, ['cp', '--', posix.join(archive, w.from), posix.join(dest, w.as)], `copying ${w.from}`, 600);
      }
      return;
    }
    await onHost(rt, call, o.cluster, o.backupHost, async (from: OpenSession) => {
      for (const w of want) {
        const s = await streamFile(from, dst, posix.join(archive, w.from), posix.join(dest, w.as), 3600, (n) => heartbeat({ staging: w.as, bytes: n }));
        bytes += s.bytes;
      }
    });
  });
  return {
    files: want.length,
    bytes,
    detail: `staged ${want.length} WAL file(s) from ${archive} on ${o.backupHost} into ${dest}${bytes ? ` (${formatBytes(bytes)} streamed)` : ''}`,
  };
}

/**
 * In the extracted data directory <x> (before it is moved into place): the staged segments moved
 * in, recovery.signal written, the recovery settings appended. Idempotent.
 */
const CONFIGURE_SH = [
  'set -e',
  's="$1"; x="$2"; conf="$3"',
  'if [ -d "$s/pitr-wal" ]; then rm -rf -- "$x/switchyard-pitr-wal"; mv -- "$s/pitr-wal" "$x/switchyard-pitr-wal"; fi',
  '[ -d "$x/switchyard-pitr-wal" ] || { echo "no staged WAL in $s/pitr-wal" >&2; exit 1; }',
  ': > "$x/recovery.signal"',
  'grep -q "^# switchyard point-in-time restore" "$x/postgresql.auto.conf" 2>/dev/null || printf "%s" "$conf" >> "$x/postgresql.auto.conf"',
  'echo configured',
].join('\n');

export async function configurePitr(open: OpenSession, staging: string, extracted: string, dataDir: string, targetTime: string): Promise<string> {
  await mustExec(
    open,
    shellScript(CONFIGURE_SH, staging, extracted, pitrAutoConf(dataDir, targetTime)),
    `setting up the recovery to ${targetTime} in ${extracted}`,
  );
  return `targeted recovery to ${targetTime} set (recovery.signal, recovery_target_time, promote), replaying ${posix.join(dataDir, DATA_WAL_DIR)}`;
}

export function pgRestorePitrActivities(rt: Runtime) {
  return {
    pgRestorePitrFinish: rt.activity(async (input: PgRestoreNodeInput & { targetTime: string }, call): Promise<PgRestorePitrFinishResult> => {
      const t0 = Date.now();
      const n = call.top.node(input.cluster, input.node);
      let last = '';
      // Until it answers out of recovery: replaying to the target, then promoting.
      for (;;) {
        try {
          const rec = await withPgClient(rt, call, input.cluster, input.node, async (pg) => (await pg.query('SELECT pg_is_in_recovery() AS rec')).rows[0]?.rec);
          if (rec === false) break;
          last = 'still replaying';
        } catch (err) {
          last = errorMessage(err).slice(0, 300);
          // No answer: replaying with hot_standby off, or stopped. A target the archive never reaches ends recovery with
          // an error and the server stops: that is for a person, not for hours of polling.
          const st = await onHost(rt, call, input.cluster, n.sshHost, (open) => pgCtlStatus(open, n));
          if (st.running === false)
            throw ApplicationFailure.nonRetryable(
              `PostgreSQL on ${input.node} stopped during its point-in-time recovery to ${input.targetTime} (${last}): a target the WAL archive does not reach ` +
                `ends recovery with an error; its server log says why. The data directory holds backup ${input.backupId} with the recovery settings; ` +
                `the old one was moved aside`,
              Errors.RestoreLaunchFailed,
            );
        }
        if (Date.now() - t0 > WAIT_LIMIT_MS)
          throw new Error(`${input.node} did not finish its point-in-time recovery to ${input.targetTime} within 6 h (${last})`);
        heartbeat({ node: input.node, step: `replaying to ${input.targetTime}`, last });
        await sleep(1000);
      }
      const reached = await withPgClient(rt, call, input.cluster, input.node, async (pg) => {
        const r = (
          await pg.query(
            `SELECT to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, pg_current_wal_lsn()::text AS lsn,
                    (SELECT timeline_id FROM pg_control_checkpoint()) AS tli`,
          )
        ).rows[0] as { at: string | null; lsn: string; tli: number };
        for (const k of PITR_SETTINGS) await pg.query(`ALTER SYSTEM RESET ${k}`);
        await pg.query('SELECT pg_reload_conf()');
        return { targetTime: input.targetTime, lastReplayAt: r.at, lsn: r.lsn, timeline: Number(r.tli) };
      });
      const wal = posix.join(n.dataDir, DATA_WAL_DIR);
      await onHost(rt, call, input.cluster, n.sshHost, (open) => execArgv(open, ['rm', '-rf', '--', wal], 600));
      const waitedMs = Date.now() - t0;
      return {
        backupId: input.backupId,
        node: input.node,
        reached,
        waitedMs,
        detail:
          `${input.node} replayed to ${input.targetTime} and promoted in ${(waitedMs / 1000).toFixed(1)} s: last transaction replayed committed at ` +
          `${reached.lastReplayAt ?? 'none after the backup'}, LSN ${reached.lsn}, timeline ${reached.timeline}; recovery settings reset, ${wal} removed`,
      };
    }),
  };
}
