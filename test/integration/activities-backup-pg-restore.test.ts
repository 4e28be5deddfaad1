/**
 * Restoring a PostgreSQL base backup onto a database node (backup/pg-restore.ts) against the real
 * sandbox. The test makes the backup itself, as the backup activity would: pg_basebackup -F t -z
 * -X stream from the standby dc2-db, run as the sandbox's OS user into the sandbox's backups dir,
 * and a switchyard-manifest.json computed here. The sandbox's backup server is dc2-app (not a
 * database host), so restores onto dc2-db stream every file through the worker.
 *
 * In order: numbered rows written on dc1 and replayed on dc2, the backup, more rows; a copy of the
 * backup with one byte changed fails staging (BackupCorrupt naming the file) and leaves dc2-db
 * alone; the good backup is staged while dc2-db runs (again: reused; a damaged staged file: only
 * that file copied again); the swap refuses a running node; dc2-db fenced, swapped and started
 * comes up as a primary with exactly the rows written before the backup, its old data directory
 * kept aside; swapping again changes nothing. The sandbox is taken down in `after`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chownSync, createReadStream, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveRunAs, run } from '../../sandbox/procs';
import { createActivities, type Activities } from '../../src/activities';
import { MANIFEST_FILE } from '../../src/activities/backup/files';
import { pgRestoreActivities } from '../../src/activities/backup/pg-restore';
import { RESTORED_MARKER, stagingDirName } from '../../src/activities/backup/pg-restore-plan';
import type { PgBackupFile, PgBackupManifest } from '../../src/contract/backup';
import { Runtime } from '../../src/activities/runtime';
import type { Topology } from '../../src/topology/schema';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { nodeQuery } from '../support/pg';
import { flipByte } from '../support/files';

const CLUSTER = 'demo';
const GOOD = 'restore-test-1';
const BAD = 'restore-test-corrupt';
const BEFORE = Array.from({ length: 40 }, (_, i) => `restore-test before ${String(i + 1).padStart(3, '0')}`);
const AFTER = Array.from({ length: 15 }, (_, i) => `restore-test after ${String(i + 1).padStart(3, '0')}`);

let sb: TestSandbox | undefined;
let act: Activities;
let restore: ReturnType<typeof pgRestoreActivities>;
let top: Topology;

const node = (name: string) => top.clusters[CLUSTER].postgres.nodes[name];
const backupRoot = () => top.clusters[CLUSTER].backup!.root;
const backupPath = (id: string) => join(backupRoot(), CLUSTER, id);

/** A query as the tool's user, with the test's own client (not through the activities). */
const query = <T extends Record<string, unknown>>(nodeName: string, text: string, values: unknown[] = []) => nodeQuery<T>(top, CLUSTER, nodeName, text, values);

const notes = async (nodeName: string) =>
  (await query<{ note: string }>(nodeName, `SELECT note FROM public.sandbox_rows WHERE note LIKE 'restore-test %' ORDER BY id`)).map((r) => r.note);

/** With SWITCHYARD_TEST_VERBOSE=1: what an activity returned, for a person reading the run. */
function show<T>(label: string, v: T): T {
  if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(`[${label}] ${JSON.stringify(v, null, 2)}\n`);
  return v;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Files and directories beside a data directory (the aside and staging dirs land there). */
const besideDataDir = (nodeName: string) => readdirSync(dirname(node(nodeName).dataDir)).sort();

/** Wait until `nodeName` replayed what the primary has written so far (a bound, not a timing assertion). */
async function waitReplayed(primary: string, standby: string): Promise<void> {
  const [{ lsn }] = await query<{ lsn: string }>(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
  const w = await act.pgWaitReplay({ cluster: CLUSTER, node: standby, lsn, timeoutSeconds: 120 });
  assert.equal(w.reached, true, w.detail);
}

function writeManifest(dir: string, m: PgBackupManifest): void {
  const path = join(dir, MANIFEST_FILE);
  writeFileSync(path, JSON.stringify(m, null, 2) + '\n', { mode: 0o644 });
  const runAs = resolveRunAs();
  if (runAs.switching) chownSync(path, runAs.uid, runAs.gid);
}

/** What the backup activity makes: pg_basebackup -F t -z -X stream as the sandbox's user, then the manifest. */
async function makeBackup(id: string, source: string): Promise<PgBackupManifest> {
  const c = top.clusters[CLUSTER];
  const b = c.backup!;
  const n = node(source);
  const dir = backupPath(id);
  const startedAt = new Date().toISOString();
  const [src] = await query<{ v: string; num: string; sysid: string; rec: boolean }>(
    source,
    `SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS num, ` +
      `(SELECT system_identifier::text FROM pg_control_system()) AS sysid, pg_is_in_recovery() AS rec`,
  );
  const [{ bytes }] = await query<{ bytes: string }>(source, 'SELECT sum(pg_database_size(oid))::text AS bytes FROM pg_database');
  const conninfo = `host=${n.host} port=${n.port} user=${c.postgres.replication.user} passfile=${b.passfile ?? c.postgres.passfile} connect_timeout=5`;
  const r = await run(
    join(b.binDir, 'pg_basebackup'),
    ['-D', dir, '-F', 't', '-z', '-X', 'stream', '-c', 'fast', '--no-sync', '-l', `switchyard ${id}`, '-d', conninfo],
    {
      runAs: resolveRunAs(),
      timeoutMs: 300_000,
    },
  );
  assert.equal(r.code, 0, `pg_basebackup: ${r.stderr}`);
  const names = readdirSync(dir).sort();
  assert.deepEqual(names, ['backup_manifest', 'base.tar.gz', 'pg_wal.tar.gz']);
  const files: PgBackupFile[] = [];
  for (const name of names) files.push({ name, bytes: statSync(join(dir, name)).size, sha256: await sha256File(join(dir, name)) });
  const wal = (
    JSON.parse(readFileSync(join(dir, 'backup_manifest'), 'utf8')) as { 'WAL-Ranges': { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[] }
  )['WAL-Ranges'];
  const m: PgBackupManifest = {
    format: 'switchyard-pg-backup/1',
    cluster: CLUSTER,
    backupId: id,
    sourceNode: source,
    sourceRole: src.rec ? 'standby' : 'primary',
    startedAt,
    finishedAt: new Date().toISOString(),
    startLsn: wal[0]['Start-LSN'],
    endLsn: wal[wal.length - 1]['End-LSN'],
    timeline: wal[wal.length - 1].Timeline,
    pgVersion: src.v,
    pgMajor: Math.floor(Number(src.num) / 10000),
    systemIdentifier: src.sysid,
    files,
    totalBytes: files.reduce((s, f) => s + f.bytes, 0),
    databaseBytes: Number(bytes),
  };
  writeManifest(dir, m);
  return m;
}

let good: PgBackupManifest;

before(async () => {
  sb = await startTestSandbox();
  top = sb.topology;
  act = createActivities({ topology: () => top });
  restore = pgRestoreActivities(new Runtime({ topology: () => top }));

  assert.equal(top.clusters[CLUSTER].backup?.host, 'dc2-app', 'the backup server is not a database host: restores stream');
  const values = BEFORE.map((_, i) => `($${i + 1})`).join(', ');
  await query('dc1-db', `INSERT INTO public.sandbox_rows (note) VALUES ${values}`, BEFORE);
  await waitReplayed('dc1-db', 'dc2-db');
  good = await makeBackup(GOOD, 'dc2-db');
  await query('dc1-db', `INSERT INTO public.sandbox_rows (note) VALUES ${AFTER.map((_, i) => `($${i + 1})`).join(', ')}`, AFTER);
  await waitReplayed('dc1-db', 'dc2-db');
  assert.deepEqual(await notes('dc2-db'), [...BEFORE, ...AFTER], 'the live standby has every row');
});

after(async () => {
  await sb?.down();
});

describe('restoring a base backup onto dc2-db', () => {
  it('a backup with one byte changed in base.tar.gz fails staging with BackupCorrupt naming the file; dc2-db is untouched', async () => {
    const badDir = backupPath(BAD);
    const cp = await run('cp', ['-a', '--', backupPath(GOOD), badDir]);
    assert.equal(cp.code, 0, cp.stderr);
    writeManifest(badDir, { ...good, backupId: BAD });
    flipByte(join(badDir, 'base.tar.gz'));

    const n = node('dc2-db');
    const ino = statSync(n.dataDir).ino;
    const beside = besideDataDir('dc2-db');
    await assert.rejects(
      restore.pgRestoreStage({ cluster: CLUSTER, backupId: BAD, node: 'dc2-db' }),
      (e: Error & { type?: string; nonRetryable?: boolean }) => {
        show('pgRestoreStage (corrupt)', e.message);
        assert.equal(e.type, 'BackupCorrupt');
        assert.equal(e.nonRetryable, true);
        assert.match(e.message, /base\.tar\.gz has SHA-256 [0-9a-f]{16}…, the manifest says [0-9a-f]{16}…/);
        return true;
      },
    );
    assert.ok(!existsSync(stagingDirName(n.dataDir, BAD)), 'nothing is left staged');
    assert.deepEqual(besideDataDir('dc2-db'), beside, 'nothing new beside the data directory');
    assert.equal(statSync(n.dataDir).ino, ino, 'the data directory is the same one');
    assert.equal((await query<{ r: boolean }>('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, true, 'dc2-db still runs as a standby');
  });

  it("a backup whose databases would not fit beside dc2-db's data directory is refused before anything is copied (InsufficientSpace)", async () => {
    const id = 'restore-test-huge';
    const dir = backupPath(id);
    const cp = await run('cp', ['-a', '--', backupPath(GOOD), dir]);
    assert.equal(cp.code, 0, cp.stderr);
    // The same files, from a cluster whose databases were 1 PiB when it was backed up.
    writeManifest(dir, { ...good, backupId: id, databaseBytes: 2 ** 50 });
    const n = node('dc2-db');
    const ino = statSync(n.dataDir).ino;
    const beside = besideDataDir('dc2-db');
    try {
      await assert.rejects(
        restore.pgRestoreStage({ cluster: CLUSTER, backupId: id, node: 'dc2-db' }),
        (e: Error & { type?: string; nonRetryable?: boolean }) => {
          show('pgRestoreStage (huge)', e.message);
          assert.equal(e.type, 'InsufficientSpace');
          assert.equal(e.nonRetryable, true);
          assert.match(e.message, /not enough free space on dc2-db to restore backup restore-test-huge beside /);
          assert.match(
            e.message,
            new RegExp(
              /it needs [\d.]+ PiB \([\d.]+ (KiB|MiB) to copy \+ 1\.00 PiB to extract \(the databases' size when backed up\) /.source +
                /\+ a reserve of [\d.]+ TiB\), the filesystem of \/\S* has [\d.]+ \w+ free/.source,
            ),
          );
          assert.match(e.message, /Nothing was copied and dc2-db is unchanged/);
          return true;
        },
      );
    } finally {
      await run('rm', ['-rf', '--', dir]);
    }
    assert.ok(!existsSync(stagingDirName(n.dataDir, id)), 'nothing staged');
    assert.deepEqual(besideDataDir('dc2-db'), beside, 'nothing new beside the data directory');
    assert.equal(statSync(n.dataDir).ino, ino, 'the data directory is the same one');
    assert.equal((await query<{ r: boolean }>('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, true, 'dc2-db still runs as a standby');
  });

  it('pgRestoreSwap refuses a backup that was never staged (RestoreNotStaged)', async () => {
    const f = await act.pgFence({ cluster: CLUSTER, node: 'dc2-db' });
    assert.equal(f.fenced, true, f.detail);
    try {
      await assert.rejects(restore.pgRestoreSwap({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }), { type: 'RestoreNotStaged', nonRetryable: true });
    } finally {
      const s = await act.pgStart({ cluster: CLUSTER, node: 'dc2-db' });
      assert.equal(s.running, true, s.detail);
    }
  });

  it('pgRestoreStage streams the backup beside the data directory while dc2-db runs; again: reused; a damaged staged file is copied again', async () => {
    const n = node('dc2-db');
    const staging = stagingDirName(n.dataDir, GOOD);
    const s = show('pgRestoreStage', await restore.pgRestoreStage({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }));
    assert.equal(s.stagingDir, staging);
    assert.equal(s.stagingDir, `${n.dataDir}.switchyard-restore-${GOOD}`);
    assert.equal(s.verify.ok, true, s.verify.detail);
    assert.equal(s.verify.checked, good.files.length);
    assert.equal(s.bytesCopied, good.totalBytes);
    assert.match(s.detail, /by streaming from dc2-app through the worker/);
    assert.match(s.detail, /[\d.]+ \w+ free on \/\S*, [\d.]+ \w+ needed/, 'the free space was checked first');
    for (const f of good.files) assert.equal(await sha256File(join(staging, f.name)), f.sha256, f.name);
    assert.deepEqual(readdirSync(staging).sort(), good.files.map((f) => f.name).sort(), 'no part files left');
    assert.equal((statSync(staging).mode & 0o777).toString(8), '700');
    assert.equal((await query<{ r: boolean }>('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, true, 'PostgreSQL kept running');

    const again = await restore.pgRestoreStage({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' });
    assert.equal(again.bytesCopied, 0, again.detail);
    assert.equal(again.verify.ok, true);
    assert.match(again.detail, /reused/);

    flipByte(join(staging, 'base.tar.gz'));
    const base = good.files.find((f) => f.name === 'base.tar.gz')!;
    const repaired = show('pgRestoreStage (repair)', await restore.pgRestoreStage({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }));
    assert.equal(repaired.bytesCopied, base.bytes, repaired.detail);
    assert.equal(repaired.verify.ok, true, repaired.verify.detail);
    assert.equal(await sha256File(join(staging, 'base.tar.gz')), base.sha256);
  });

  it('pgRestoreSwap refuses while PostgreSQL runs (PostgresRunning) and changes nothing', async () => {
    const n = node('dc2-db');
    const ino = statSync(n.dataDir).ino;
    await assert.rejects(
      restore.pgRestoreSwap({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }),
      (e: Error & { type?: string; nonRetryable?: boolean }) => {
        assert.equal(e.type, 'PostgresRunning');
        assert.equal(e.nonRetryable, true);
        assert.match(e.message, /dc2-db .* is running .*stop it first/);
        return true;
      },
    );
    assert.equal(statSync(n.dataDir).ino, ino);
    assert.ok(existsSync(stagingDirName(n.dataDir, GOOD)), 'the staged backup stays');
  });

  it('fenced, swapped and started, dc2-db is a primary with exactly the rows written before the backup; the old data directory is kept aside', async () => {
    const n = node('dc2-db');
    const oldVersion = readFileSync(join(n.dataDir, 'PG_VERSION'), 'utf8');
    const f = await act.pgFence({ cluster: CLUSTER, node: 'dc2-db' });
    assert.equal(f.fenced, true, f.detail);

    const sw = show('pgRestoreSwap', await restore.pgRestoreSwap({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }));
    assert.equal(sw.changed, true, sw.detail);
    assert.equal(sw.dataDir, n.dataDir);
    assert.ok(sw.movedAside, sw.detail);
    assert.match(sw.movedAside, new RegExp(`^${n.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.switchyard-\\d{8}T\\d{6}Z$`));
    assert.equal(readFileSync(join(sw.movedAside, 'PG_VERSION'), 'utf8'), oldVersion, 'the old directory is on disk, whole');
    assert.ok(existsSync(join(sw.movedAside, 'standby.signal')), 'it is the standby that was running');
    assert.ok(!existsSync(stagingDirName(n.dataDir, GOOD)), 'staging removed');
    assert.equal((statSync(n.dataDir).mode & 0o777).toString(8), '700');
    assert.ok(!existsSync(join(n.dataDir, 'standby.signal')), 'the backup of a standby had standby.signal: removed');
    assert.ok(existsSync(join(n.dataDir, 'backup_label')), 'a base backup, not yet started');
    assert.match(readFileSync(join(n.dataDir, RESTORED_MARKER), 'utf8'), new RegExp(`^backup=${GOOD}$`, 'm'));
    assert.ok(existsSync(join(n.configDir!, 'postgresql.conf')), "the node's own settings stay in its config dir");

    const retried = await restore.pgRestoreSwap({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' });
    assert.equal(retried.changed, false, retried.detail);
    assert.equal(retried.movedAside, sw.movedAside);

    const start = show('pgStart', await act.pgStart({ cluster: CLUSTER, node: 'dc2-db' }));
    assert.equal(start.running, true, start.detail);
    assert.equal((await query<{ r: boolean }>('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'dc2-db runs as a primary');
    assert.deepEqual(await notes('dc2-db'), BEFORE, 'exactly the rows written before the backup');
    await query('dc2-db', `INSERT INTO public.sandbox_rows (note) VALUES ('restore-test written on the restored dc2-db')`);
    const st = await act.pgStatus({ cluster: CLUSTER, node: 'dc2-db' });
    show('pgStatus', st);
    assert.deepEqual([st.reachable, st.inRecovery], [true, false], JSON.stringify(st));
  });

  it('pgRestoreSwap again changes nothing: the data directory already holds the backup and nothing is staged', async () => {
    const n = node('dc2-db');
    const beside = besideDataDir('dc2-db');
    const ino = statSync(n.dataDir).ino;
    const again = show('pgRestoreSwap (again)', await restore.pgRestoreSwap({ cluster: CLUSTER, backupId: GOOD, node: 'dc2-db' }));
    assert.equal(again.changed, false, again.detail);
    assert.match(again.detail, /already holds backup/);
    assert.equal(statSync(n.dataDir).ino, ino);
    assert.deepEqual(besideDataDir('dc2-db'), beside);
    assert.deepEqual(await notes('dc2-db'), [...BEFORE, 'restore-test written on the restored dc2-db']);
  });
});
