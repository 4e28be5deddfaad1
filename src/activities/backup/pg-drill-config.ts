/**
 * The pure part of a restore drill: the scratch copy's own postgresql.conf and pg_hba.conf (unix
 * socket in a directory only the OS user reaches, no TCP, no replication, no archiving), the
 * settings it takes from the backup's postgresql.auto.conf, its tablespace map, and the row count.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { confQuote } from '../postgres/standby-config';

/** Longest unix socket path used: the kernel's limit is 107 bytes. */
const MAX_SOCKET_PATH = 100;

/**
 * Settings a drill's own postgresql.conf decides: any line for them in the backup's
 * postgresql.auto.conf (which would override postgresql.conf) is removed, so the scratch copy
 * never listens, connects, archives or writes where the live cluster does.
 */
export const DRILL_OWNED_SETTINGS = [
  'listen_addresses',
  'port',
  'unix_socket_directories',
  'unix_socket_group',
  'unix_socket_permissions',
  'data_directory',
  'config_file',
  'hba_file',
  'ident_file',
  'external_pid_file',
  'primary_conninfo',
  'primary_slot_name',
  'promote_trigger_file',
  'restore_command',
  'archive_mode',
  'archive_command',
  'archive_library',
  'archive_cleanup_command',
  'recovery_end_command',
  'recovery_target',
  'recovery_target_action',
  'recovery_target_inclusive',
  'recovery_target_lsn',
  'recovery_target_name',
  'recovery_target_time',
  'recovery_target_timeline',
  'recovery_target_xid',
  'hot_standby',
  'max_wal_senders',
  'synchronous_standby_names',
  'shared_buffers',
  'huge_pages',
  'logging_collector',
  'log_destination',
  'ssl',
  'fsync',
  'synchronous_commit',
  'cluster_name',
  'lc_messages',
];

/** postgresql.auto.conf without any line setting one of `keys` (any case, with or without "="). */
export function stripSettings(text: string, keys: readonly string[]): { text: string; removed: string[] } {
  const drop = new Set(keys.map((k) => k.toLowerCase()));
  const removed: string[] = [];
  const lines = text.split(/\r?\n/);
  const kept = lines.filter((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.$-]*)\s*(=|\s|$)/.exec(line);
    if (m && drop.has(m[1].toLowerCase())) {
      removed.push(m[1].toLowerCase());
      return false;
    }
    return true;
  });
  return { text: kept.join('\n'), removed: [...new Set(removed)] };
}

/** The scratch copy's postgresql.conf: unix socket only, in a directory only the OS user reaches. */
export function drillPostgresqlConf(o: {
  cluster: string;
  backupId: string;
  dataDir: string;
  socketDir: string;
  port: number;
  /** Point-in-time: replay archived WAL from `walDir` up to `targetTime`, then promote. */
  recovery?: { walDir: string; targetTime: string };
}): string {
  const recovery = o.recovery
    ? [
        `# point in time: replay the WAL archive up to ${o.recovery.targetTime}, then promote`,
        `restore_command = ${confQuote(pitrRestoreCommand(o.recovery.walDir))}`,
        `recovery_target_time = ${confQuote(pgTimestamp(o.recovery.targetTime))}`,
        `recovery_target_action = 'promote'`,
        `recovery_target_timeline = 'latest'`,
      ]
    : [`restore_command = ''`];
  return [
    `# switchyard restore drill of backup ${o.backupId} (cluster ${o.cluster}): a scratch copy,`,
    '# stopped and removed when the drill ends. Not joined to replication, no TCP, no archiving.',
    `listen_addresses = ''`,
    `port = ${o.port}`,
    `unix_socket_directories = ${confQuote(o.socketDir)}`,
    'unix_socket_permissions = 0700',
    `hba_file = ${confQuote(posix.join(o.dataDir, 'pg_hba.conf'))}`,
    `ident_file = ${confQuote(posix.join(o.dataDir, 'pg_ident.conf'))}`,
    `external_pid_file = ''`,
    'archive_mode = off',
    ...recovery,
    `primary_conninfo = ''`,
    `primary_slot_name = ''`,
    // Off: the server answers only once recovery has ended, which is what the RTO measures.
    'hot_standby = off',
    'shared_buffers = 32MB',
    'max_wal_senders = 0',
    `synchronous_standby_names = ''`,
    // A scratch copy that is removed afterwards needs no durability.
    'fsync = off',
    'synchronous_commit = off',
    'logging_collector = off',
    `log_destination = 'stderr'`,
    'ssl = off',
    `cluster_name = 'switchyard-drill'`,
    `lc_messages = 'C'`,
    '',
  ].join('\n');
}

/** "2026-12-04T02:33:43.368Z" → "2026-12-04 02:33:43.368+00" (recovery_target_time does not take the ISO "T…Z" form). */
export function pgTimestamp(iso: string): string {
  return new Date(Date.parse(iso)).toISOString().replace('T', ' ').replace('Z', '+00');
}

/**
 * restore_command over a pg_receivewal archive: the finished segment, else the one still being
 * written (<name>.partial: the newest WAL there is), else nothing (recovery ends there).
 */
export function pitrRestoreCommand(walDir: string): string {
  const d = walDir.replace(/"/g, '');
  return `cp "${d}/%f" "%p" 2>/dev/null || cp "${d}/%f.partial" "%p" 2>/dev/null`;
}

/** Only the OS user, over the scratch socket (whose directory only that user can enter). */
export const DRILL_HBA = '# switchyard restore drill: the scratch copy answers its own unix socket only\nlocal all all trust\n';

/** The unix socket directory of a drill: the scratch dir, or a short one in /tmp when that path is too long for a socket. */
export function drillSocketDir(scratch: string, port: number): { dir: string; separate: boolean } {
  if (`${scratch}/.s.PGSQL.${port}`.length <= MAX_SOCKET_PATH) return { dir: scratch, separate: false };
  return { dir: `/tmp/switchyard-drill-${createHash('sha256').update(scratch).digest('hex').slice(0, 16)}`, separate: true };
}

/**
 * tablespace_map with every tablespace pointed into the scratch copy: "<oid> <path>" lines, the
 * path replaced by `where(oid)`.
 */
export function rewriteTablespaceMap(text: string, where: (oid: string) => string): { text: string; oids: string[] } {
  const oids: string[] = [];
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(\d+) /.exec(l);
      if (!m) throw new Error(`tablespace_map line is not "<oid> <path>": ${JSON.stringify(l.slice(0, 100))}`);
      oids.push(m[1]);
      return `${m[1]} ${where(m[1])}`;
    });
  return { text: lines.length ? `${lines.join('\n')}\n` : '', oids };
}

/**
 * One SQL answering a JSON object "schema.table" → row count for every user table (ordinary and
 * partitioned) of the database, with query_to_xml so it stays one statement.
 */
export const ROW_COUNTS_SQL = `SELECT coalesce(json_object_agg(t.name, t.n ORDER BY t.name), '{}'::json)
  FROM (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS n
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%') t`;

/** Parse ROW_COUNTS_SQL's answer. */
export function parseRowCounts(text: string): Record<string, number> {
  const v = JSON.parse(text.trim() || '{}') as unknown;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`row counts are not a JSON object: ${text.slice(0, 200)}`);
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`row count of ${k} is not a number: ${JSON.stringify(n)}`);
    out[k] = n;
  }
  return out;
}
