/**
 * The pure parts of the PostgreSQL backup and drill activities (backup/pg-catalog.ts,
 * pg-create.ts, pg-drill-config.ts): PostgreSQL's backup_manifest WAL ranges,
 * switchyard-manifest.json and drill.json, the backup host's listing, the drill's own
 * configuration, and the paths a backup may use.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import {
  backupPaths,
  clusterDirOf,
  MANIFEST_FORMAT,
  parseDrillRecord,
  parseListing,
  parsePgMajor,
  parseSwitchyardManifest,
  sortNewestFirst,
} from '../../src/activities/backup/pg-catalog';
import { estimateBackupBytes, LOGIN_REFUSED_RE, parseBackupManifest } from '../../src/activities/backup/pg-create';
import {
  DRILL_HBA,
  DRILL_OWNED_SETTINGS,
  drillPostgresqlConf,
  drillSocketDir,
  parseRowCounts,
  rewriteTablespaceMap,
  stripSettings,
} from '../../src/activities/backup/pg-drill-config';
import type { PgBackupEntry, PgBackupManifest } from '../../src/contract/backup';

/** What pg_basebackup 15 writes (tar format, from a standby), trimmed. */
const PG15_MANIFEST = `{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "backup_label", "Size": 227, "Last-Modified": "2026-05-09 07:40:45 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "b1b4a4f4" },
{ "Path": "global/pg_control", "Size": 8192, "Last-Modified": "2026-05-09 07:40:45 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "7c0e2a11" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/5000028", "End-LSN": "0/5000138" }
],
"Manifest-Checksum": "0d4e0b4f7c1f9c1d2a0b6e8e1c8c1b8e9a0f3c4d5e6f708192a3b4c5d6e7f809"}
`;

function manifest(over: Partial<PgBackupManifest> = {}): PgBackupManifest {
  return {
    format: MANIFEST_FORMAT,
    cluster: 'demo',
    backupId: 'b1',
    sourceNode: 'dc2-db',
    sourceRole: 'standby',
    startedAt: '2026-05-09T07:40:44.000Z',
    finishedAt: '2026-05-09T07:40:46.000Z',
    startLsn: '0/5000028',
    endLsn: '0/5000138',
    timeline: 1,
    pgVersion: '15.18 (Debian 15.18-0+deb12u1)',
    pgMajor: 15,
    systemIdentifier: '7501234567890123456',
    files: [
      { name: 'backup_manifest', bytes: 400, sha256: 'a'.repeat(64) },
      { name: 'base.tar.gz', bytes: 4_000_000, sha256: 'b'.repeat(64) },
    ],
    totalBytes: 4_000_400,
    databaseBytes: 30_000_000,
    ...over,
  };
}

describe("parseBackupManifest: the WAL range from PostgreSQL's backup_manifest", () => {
  it('one timeline: start, end and timeline as written', () => {
    const m = parseBackupManifest(PG15_MANIFEST);
    assert.deepEqual([m.startLsn, m.endLsn, m.timeline, m.systemIdentifier], ['0/5000028', '0/5000138', 1, null]);
    assert.equal(m.ranges.length, 1);
  });

  it('a backup spanning a promotion: start from the oldest range, end and timeline from the newest, whatever the order', () => {
    const ranges = [
      { Timeline: 2, 'Start-LSN': '0/60000A0', 'End-LSN': '1/2000100' },
      { Timeline: 1, 'Start-LSN': '0/5000028', 'End-LSN': '0/60000A0' },
    ];
    for (const r of [ranges, [...ranges].reverse()]) {
      const m = parseBackupManifest(JSON.stringify({ 'PostgreSQL-Backup-Manifest-Version': 1, 'WAL-Ranges': r }));
      assert.deepEqual([m.startLsn, m.endLsn, m.timeline], ['0/5000028', '1/2000100', 2]);
    }
  });

  it('LSNs compare as numbers, not strings ("0/A000000" is past "0/9FFFFFF"); lower case is normalised', () => {
    const m = parseBackupManifest(JSON.stringify({ 'WAL-Ranges': [{ Timeline: 3, 'Start-LSN': '0/9ffffff', 'End-LSN': '0/a000000' }] }));
    assert.deepEqual([m.startLsn, m.endLsn], ['0/9FFFFFF', '0/A000000']);
  });

  it('PostgreSQL 17 manifests carry the system identifier', () => {
    const m = parseBackupManifest(
      JSON.stringify({
        'PostgreSQL-Backup-Manifest-Version': 2,
        'System-Identifier': 7501234567890123456n.toString(),
        'WAL-Ranges': [{ Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000100' }],
      }),
    );
    assert.equal(m.systemIdentifier, '7501234567890123456');
  });

  it('refuses what is not a usable manifest, saying why', () => {
    assert.throws(() => parseBackupManifest('{ "WAL-Ranges": ['), /not JSON/);
    assert.throws(() => parseBackupManifest('[]'), /not a JSON object/);
    assert.throws(() => parseBackupManifest('{ "Files": [] }'), /no WAL-Ranges/);
    assert.throws(() => parseBackupManifest('{ "WAL-Ranges": [] }'), /no WAL-Ranges/);
    assert.throws(() => parseBackupManifest('{ "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "zz", "End-LSN": "0/1" }] }'), /WAL-Ranges\[0\]/);
    assert.throws(() => parseBackupManifest('{ "WAL-Ranges": [{ "Timeline": 0, "Start-LSN": "0/1", "End-LSN": "0/2" }] }'), /WAL-Ranges\[0\]/);
  });
});

describe('switchyard-manifest.json and drill.json', () => {
  it('round-trips a manifest and checks it describes the expected backup', () => {
    const m = manifest();
    assert.deepEqual(parseSwitchyardManifest(JSON.stringify(m, null, 2)), m);
    assert.deepEqual(parseSwitchyardManifest(JSON.stringify(m), { cluster: 'demo', backupId: 'b1' }), m);
    assert.throws(
      () => parseSwitchyardManifest(JSON.stringify(m), { cluster: 'demo', backupId: 'b2' }),
      /describes backup "b1" of cluster "demo", not b2 of demo/,
    );
  });

  it('refuses a manifest that is damaged, naming the field', () => {
    assert.throws(() => parseSwitchyardManifest('{"format": "switchyard-pg-backup/1", '), /not JSON/);
    assert.throws(() => parseSwitchyardManifest(JSON.stringify({ ...manifest(), format: 'other/2' })), /"format"/);
    assert.throws(() => parseSwitchyardManifest(JSON.stringify({ ...manifest(), endLsn: 'nope' })), /"endLsn" should be an LSN/);
    assert.throws(() => parseSwitchyardManifest(JSON.stringify({ ...manifest(), files: [] })), /"files" should be a non-empty list/);
    assert.throws(
      () => parseSwitchyardManifest(JSON.stringify({ ...manifest(), files: [{ name: '../etc/passwd', bytes: 1, sha256: 'a'.repeat(64) }] })),
      /files\[0\]\.name/,
    );
    assert.throws(
      () => parseSwitchyardManifest(JSON.stringify({ ...manifest(), files: [{ name: 'base.tar.gz', bytes: 1, sha256: 'xyz' }] })),
      /files\[0\]\.sha256/,
    );
    assert.throws(() => parseSwitchyardManifest(JSON.stringify({ ...manifest(), finishedAt: 'yesterday' })), /"finishedAt" should be an ISO time/);
  });

  it("drill.json: parsed when it is this backup's record, null otherwise", () => {
    const rec = {
      backupId: 'b1',
      provenAt: '2026-05-09T08:00:00.000Z',
      workflowId: 'wf',
      rtoSeconds: 2.5,
      rpoSeconds: 1194,
      rowCounts: { 'public.sandbox_rows': 203 },
      queries: [{ sql: 'SELECT 1', ok: true, result: '1' }],
    };
    assert.deepEqual(parseDrillRecord(JSON.stringify(rec), 'b1'), rec);
    assert.equal(parseDrillRecord(JSON.stringify(rec), 'b2'), null);
    assert.equal(parseDrillRecord('{'), null);
    assert.equal(parseDrillRecord(JSON.stringify({ ...rec, rtoSeconds: 'fast' })), null);
  });
});

describe("the backup host's listing", () => {
  it('parses directories with their manifest and drill record sizes; skips unfinished and foreign names', () => {
    const text = [
      'D\tb2\t1778312445\t1200\t-',
      'D\tb1\t1778312000\t1100\t640',
      'D\tb3.partial\t1778312500\t-\t-',
      'D\tlost+found\t1\t-\t-',
      'junk',
      'D\tb4\t1778312600\t-\t-',
      '',
    ].join('\n');
    assert.deepEqual(parseListing(text), [
      { name: 'b2', modifiedAt: new Date(1778312445 * 1000).toISOString(), manifestBytes: 1200, drillBytes: null },
      { name: 'b1', modifiedAt: new Date(1778312000 * 1000).toISOString(), manifestBytes: 1100, drillBytes: 640 },
      { name: 'b4', modifiedAt: new Date(1778312600 * 1000).toISOString(), manifestBytes: null, drillBytes: null },
    ]);
  });

  it("newest first: by the manifest's finish time, else the directory's mtime", () => {
    const e = (backupId: string, finishedAt: string | null, modifiedAt: string): PgBackupEntry => ({
      backupId,
      dir: `/b/${backupId}`,
      complete: finishedAt !== null,
      manifest: finishedAt ? manifest({ backupId, finishedAt }) : null,
      drill: null,
      modifiedAt,
    });
    const sorted = sortNewestFirst([
      e('old', '2026-05-01T00:00:00Z', '2026-05-09T00:00:00Z'), // touched later (a drill wrote into it): its finish time counts
      e('new', '2026-05-08T00:00:00Z', '2026-05-08T00:00:00Z'),
      e('incomplete', null, '2026-05-05T00:00:00Z'),
    ]);
    assert.deepEqual(
      sorted.map((x) => x.backupId),
      ['new', 'incomplete', 'old'],
    );
  });
});

describe('paths', () => {
  it('a backup lives directly in <root>/<cluster>; its unfinished copy and drill scratch beside it', () => {
    assert.deepEqual(backupPaths('/srv/backups/', 'demo', 'b-2026.05.09_1'), {
      clusterDir: '/srv/backups/demo',
      dir: '/srv/backups/demo/b-2026.05.09_1',
      partial: '/srv/backups/demo/b-2026.05.09_1.partial',
      scratch: '/srv/backups/demo/.drill-b-2026.05.09_1',
      fetchLock: '/srv/backups/demo/.fetch-b-2026.05.09_1.lock',
    });
  });

  it('refuses ids and names that would leave the root, non-retryably', () => {
    for (const id of ['../x', 'a/b', '.hidden', '', 'x'.repeat(129), 'b1.partial']) {
      assert.throws(
        () => backupPaths('/srv/backups', 'demo', id),
        (e: unknown) => e instanceof ApplicationFailure && e.type === 'ConfigError' && e.nonRetryable === true,
        id,
      );
    }
    for (const cluster of ['..', '.', 'a/b', '']) assert.throws(() => clusterDirOf('/srv/backups', cluster), { type: 'ConfigError' });
    assert.throws(() => clusterDirOf('relative/root', 'demo'), { type: 'ConfigError' });
  });

  it("the drill's socket sits in the scratch dir unless that path is too long for a unix socket", () => {
    assert.deepEqual(drillSocketDir('/srv/backups/demo/.drill-b1', 55432), { dir: '/srv/backups/demo/.drill-b1', separate: false });
    const long = drillSocketDir(`/srv/backups/demo/.drill-${'x'.repeat(100)}`, 55432);
    assert.equal(long.separate, true);
    assert.match(long.dir, /^\/tmp\/switchyard-drill-[0-9a-f]{16}$/);
    assert.deepEqual(
      drillSocketDir(`/srv/backups/demo/.drill-${'x'.repeat(100)}`, 55432),
      long,
      'the same scratch gets the same socket dir (a retry finds it)',
    );
  });
});

describe("the drill's own configuration", () => {
  it('postgresql.conf: no TCP, its own socket and port, hba inside the scratch, no archiving or replication', () => {
    const conf = drillPostgresqlConf({ cluster: 'demo', backupId: 'b1', dataDir: "/srv/it's/data", socketDir: '/srv/scratch', port: 55432 });
    const get = (k: string) => new RegExp(`^${k} = (.*)$`, 'm').exec(conf)?.[1];
    assert.equal(get('listen_addresses'), "''");
    assert.equal(get('port'), '55432');
    assert.equal(get('unix_socket_directories'), "'/srv/scratch'");
    assert.equal(get('hba_file'), "'/srv/it''s/data/pg_hba.conf'");
    assert.equal(get('archive_mode'), 'off');
    assert.equal(get('primary_conninfo'), "''");
    assert.equal(get('hot_standby'), 'off');
    for (const k of conf
      .split('\n')
      .filter((l) => /^[a-z_]+ =/.test(l))
      .map((l) => l.split(' ')[0])) {
      assert.ok(DRILL_OWNED_SETTINGS.includes(k), `${k} set by the drill is stripped from the copy's auto.conf`);
    }
    assert.equal(
      DRILL_HBA.split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .join('\n'),
      'local all all trust',
    );
  });

  it('postgresql.auto.conf loses what would connect the copy to the live cluster, and keeps the rest', () => {
    const auto = [
      '# Do not edit this file manually!',
      '# It will be overwritten by the ALTER SYSTEM command.',
      "primary_conninfo = 'host=127.0.1.1 port=5432 user=replicator passfile=/x/pgpass'",
      "Primary_Slot_Name = 'dc2_db'",
      "work_mem = '64MB'",
      "listen_addresses='*'",
      "archive_command 'cp %p /archive/%f'",
      '',
    ].join('\n');
    const r = stripSettings(auto, DRILL_OWNED_SETTINGS);
    assert.deepEqual(r.removed, ['primary_conninfo', 'primary_slot_name', 'listen_addresses', 'archive_command']);
    assert.equal(r.text, ['# Do not edit this file manually!', '# It will be overwritten by the ALTER SYSTEM command.', "work_mem = '64MB'", ''].join('\n'));
    assert.deepEqual(stripSettings(r.text, DRILL_OWNED_SETTINGS), { text: r.text, removed: [] });
  });

  it('tablespace_map points every tablespace into the scratch copy', () => {
    const r = rewriteTablespaceMap('16385 /srv/pg/tbs one\n16390 /srv/pg/tbs2\n', (oid) => `/scratch/tablespaces/${oid}`);
    assert.deepEqual(r, { text: '16385 /scratch/tablespaces/16385\n16390 /scratch/tablespaces/16390\n', oids: ['16385', '16390'] });
    assert.throws(() => rewriteTablespaceMap('garbage\n', (o) => o), /not "<oid> <path>"/);
  });

  it("a refused login is recognised in pg_basebackup's output (not retried)", () => {
    assert.match(
      'pg_basebackup: error: connection to server at "127.0.2.1", port 5432 failed: FATAL:  password authentication failed for user "replicator"',
      LOGIN_REFUSED_RE,
    );
    assert.match('pg_basebackup: error: connection to server at "127.0.2.1", port 5432 failed: fe_sendauth: no password supplied', LOGIN_REFUSED_RE);
    assert.match('FATAL:  no pg_hba.conf entry for replication connection from host "127.0.2.2", user "replicator"', LOGIN_REFUSED_RE);
    assert.doesNotMatch('pg_basebackup: error: connection to server at "127.0.2.1", port 5432 failed: Connection refused', LOGIN_REFUSED_RE);
  });

  it('row counts and versions', () => {
    assert.deepEqual(parseRowCounts('{"public.sandbox_rows" : 203, "switchyard.heartbeat" : 2}\n'), { 'public.sandbox_rows': 203, 'switchyard.heartbeat': 2 });
    assert.deepEqual(parseRowCounts('{}'), {});
    assert.throws(() => parseRowCounts('{"t": "x"}'), /not a number/);
    assert.equal(parsePgMajor('postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n'), 15);
    assert.equal(parsePgMajor('postgres (PostgreSQL) 9.6.24'), 9);
    assert.equal(parsePgMajor('bash: postgres: not found'), null);
  });
});

describe('estimateBackupBytes', () => {
  const MiB = 1024 * 1024;
  const entry = (backupId: string, m: Partial<PgBackupManifest> | null): PgBackupEntry => ({
    backupId,
    dir: `/b/${backupId}`,
    complete: m !== null,
    manifest: m === null ? null : manifest({ backupId, ...m }),
    drill: null,
    modifiedAt: null,
  });

  it("applies the newest earlier backup's compression to today's databases, plus a quarter", () => {
    const e = estimateBackupBytes(1000 * MiB, [
      entry('new', { totalBytes: 100 * MiB, databaseBytes: 400 * MiB }),
      entry('old', { totalBytes: 1 * MiB, databaseBytes: 400 * MiB }),
    ]);
    assert.equal(e?.bytes, Math.ceil(1000 * MiB * 0.25 * 1.25));
    assert.equal(e?.from, 'backup new (100.0 MiB for 400.0 MiB of databases)');
  });

  it('skips backups without both sizes; nothing to go on is null', () => {
    assert.equal(
      estimateBackupBytes(1000, [entry('a', { databaseBytes: null }), entry('b', null), entry('c', { totalBytes: 10, databaseBytes: 100 })])?.bytes,
      125,
    );
    assert.equal(estimateBackupBytes(1000, []), null);
    assert.equal(estimateBackupBytes(null, [entry('c', { totalBytes: 10, databaseBytes: 100 })]), null);
    assert.equal(estimateBackupBytes(1000, [entry('z', { totalBytes: 10, databaseBytes: 0 })]), null);
  });
});
