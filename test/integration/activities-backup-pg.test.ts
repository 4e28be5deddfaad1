/**
 * The PostgreSQL backup and drill activities (backup/pg-catalog.ts, pg-create.ts, pg-drill.ts)
 * against the real sandbox: a base backup of the standby dc2-db taken on the backup host (dc2-app)
 * over SSH, checked here file by file against its manifest; made once whatever the number of
 * calls; listed; restored by a drill into a scratch copy that finds exactly the rows written
 * before the backup and leaves nothing running or on disk; a copy with one byte changed refused
 * by the drill; deletion of exactly one backup. The sandbox (and with it every backup and scratch
 * directory) is taken down in `after`.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { cpSync, createReadStream, existsSync, lchownSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pgBackupCatalogActivities } from '../../src/activities/backup/pg-catalog';
import { pgBackupCreateActivities } from '../../src/activities/backup/pg-create';
import { pgDrillActivities } from '../../src/activities/backup/pg-drill';
import { MANIFEST_FILE, DRILL_FILE } from '../../src/activities/backup/files';
import type { PgBackupManifest, PgDrillRecord } from '../../src/contract/backup';
import { Runtime } from '../../src/activities/runtime';
import { lsnDiff } from '../../src/contract/lsn';
import type { Topology } from '../../src/topology/schema';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { nodeQuery } from '../support/pg';
import { flipByte } from '../support/files';

const CLUSTER = 'demo';
const LSN_RE = /^[0-9A-F]+\/[0-9A-F]+$/;
const ROWS_BEFORE = 300;
const ROWS_AFTER = 40;

let sb: TestSandbox | undefined;
let top: Topology;
let act: ReturnType<typeof pgBackupCatalogActivities> & ReturnType<typeof pgBackupCreateActivities> & ReturnType<typeof pgDrillActivities>;

const backup = () => top.clusters[CLUSTER].backup!;
const clusterDir = () => join(backup().root, CLUSTER);
const dirOf = (id: string) => join(clusterDir(), id);
const scratchOf = (id: string) => join(clusterDir(), `.drill-${id}`);

/** A query as the tool's user, with the test's own client (not through the activities). */
const query = <T extends Record<string, unknown>>(nodeName: string, text: string, values: unknown[] = []) => nodeQuery<T>(top, CLUSTER, nodeName, text, values);

const count = async (nodeName: string) => Number((await query<{ n: string }>(nodeName, 'SELECT count(*) AS n FROM public.sandbox_rows'))[0].n);

/** Wait (no timing asserted) until the standby has replayed what the primary wrote so far. */
async function waitReplayed(primary: string, standby: string): Promise<void> {
  const [{ lsn }] = await query<{ lsn: string }>(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
  for (let i = 0; i < 600; i++) {
    const [{ r }] = await query<{ r: string | null }>(standby, 'SELECT pg_last_wal_replay_lsn()::text AS r');
    if (r && lsnDiff(r, lsn) >= 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`${standby} did not replay up to ${lsn} within a minute`);
}

/** SHA-256 of a file, streamed. */
function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Processes working in (or below) a directory: a scratch server left behind would show here. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cwd = readlinkSync(`/proc/${p}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) out.push(Number(p));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** Whether something accepts TCP connections there (the drill's server never listens on TCP). */
function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (v: boolean) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(3000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

function show<T>(label: string, v: T): T {
  if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(`[${label}] ${JSON.stringify(v, null, 2)}\n`);
  return v;
}

/** Copy a backup directory under another id as the backup host's user owns it (we may be root). */
function copyBackup(from: string, to: string): void {
  const st = statSync(dirOf(from));
  cpSync(dirOf(from), dirOf(to), { recursive: true, preserveTimestamps: true });
  for (const p of [dirOf(to), ...readdirSync(dirOf(to)).map((f) => join(dirOf(to), f))]) lchownSync(p, st.uid, st.gid);
}

/** As the sandbox's run-as user (the SSH user of the backup host), when we are root. */
function runAsHostUser(argv: string[]): ReturnType<typeof spawnSync> {
  const user = top.clusters[CLUSTER].ssh.user;
  const full = process.getuid?.() === 0 && user !== 'root' ? ['runuser', '-u', user, '--', ...argv] : argv;
  return spawnSync(full[0], full.slice(1), { encoding: 'utf8', timeout: 120_000 });
}

let rowsBeforeBackup = 0;
let made: PgBackupManifest;

before(async () => {
  sb = await startTestSandbox();
  top = sb.topology;
  const rt = new Runtime({ topology: () => top });
  act = { ...pgBackupCatalogActivities(rt), ...pgBackupCreateActivities(rt), ...pgDrillActivities(rt) };
});

after(async () => {
  // A scratch server a failed assertion left behind works in this sandbox's backup directory:
  // those processes (found by their working directory, nothing else) go before the sandbox does.
  if (top?.clusters[CLUSTER].backup) {
    for (const pid of processesIn(clusterDir())) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  await sb?.down();
});

describe('a base backup of the standby on the backup host', () => {
  it('makes one directory whose manifest matches its files, with WAL range, timeline and version', async () => {
    assert.deepEqual(await act.pgBackupList({ cluster: CLUSTER }), [], 'no backups yet (no cluster directory at all)');
    await query('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'before the backup ' || g FROM generate_series(1, ${ROWS_BEFORE}) g`);
    await waitReplayed('dc1-db', 'dc2-db');
    rowsBeforeBackup = await count('dc2-db');
    assert.equal(rowsBeforeBackup, await count('dc1-db'));

    const r = show('pgBackupCreate', await act.pgBackupCreate({ cluster: CLUSTER, backupId: 'b1', source: 'dc2-db', sourceRole: 'standby' }));
    made = r.manifest;
    await query('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'after the backup ' || g FROM generate_series(1, ${ROWS_AFTER}) g`);

    assert.equal(r.created, true, r.detail);
    assert.equal(r.dir, dirOf('b1'));
    assert.deepEqual(readdirSync(clusterDir()), ['b1'], 'one directory, no .partial left');
    assert.deepEqual(readdirSync(dirOf('b1')).sort(), ['backup_manifest', 'base.tar.gz', 'pg_wal.tar.gz', MANIFEST_FILE].sort());
    assert.deepEqual(JSON.parse(readFileSync(join(dirOf('b1'), MANIFEST_FILE), 'utf8')), r.manifest, 'the manifest on disk is the one returned');

    const m = r.manifest;
    assert.deepEqual(m.files.map((f) => f.name).sort(), ['backup_manifest', 'base.tar.gz', 'pg_wal.tar.gz']);
    for (const f of m.files) {
      const path = join(dirOf('b1'), f.name);
      assert.equal(statSync(path).size, f.bytes, `${f.name} size`);
      assert.equal(await sha256File(path), f.sha256, `${f.name} SHA-256`);
    }
    assert.equal(
      m.totalBytes,
      m.files.reduce((s, f) => s + f.bytes, 0),
    );
    assert.match(m.startLsn, LSN_RE);
    assert.match(m.endLsn, LSN_RE);
    assert.ok(lsnDiff(m.endLsn, m.startLsn) > 0, `${m.startLsn} .. ${m.endLsn}`);
    const pgm = JSON.parse(readFileSync(join(dirOf('b1'), 'backup_manifest'), 'utf8')) as {
      'WAL-Ranges': { Timeline: number; 'Start-LSN': string; 'End-LSN': string }[];
    };
    assert.deepEqual(pgm['WAL-Ranges'], [{ Timeline: m.timeline, 'Start-LSN': m.startLsn, 'End-LSN': m.endLsn }]);
    assert.equal(m.timeline, 1);
    assert.equal(m.pgMajor, 15);
    assert.match(m.pgVersion, /^15\.\d+/);
    const [{ sysid }] = await query<{ sysid: string }>('dc1-db', 'SELECT system_identifier::text AS sysid FROM pg_control_system()');
    assert.equal(m.systemIdentifier, sysid);
    assert.deepEqual([m.cluster, m.backupId, m.sourceNode, m.sourceRole, m.format], [CLUSTER, 'b1', 'dc2-db', 'standby', 'switchyard-pg-backup/1']);
    assert.ok(m.databaseBytes !== null && m.databaseBytes > 0);
    assert.ok(Date.parse(m.finishedAt) >= Date.parse(m.startedAt));
    const pw = readFileSync(top.clusters[CLUSTER].postgres.replication.password!.file!, 'utf8').trim();
    assert.ok(!JSON.stringify(r).includes(pw), 'no password in the result');
    process.stderr.write(
      `# backup b1: ${m.totalBytes} bytes in ${m.files.length} files (databases ${m.databaseBytes} bytes); ` +
        `${r.detail.match(/pg_basebackup [\d.]+ s/)?.[0] ?? ''}; activity ${(r.durationMs / 1000).toFixed(1)} s\n`,
    );
  });

  it('called again with the same backup id it makes nothing new', async () => {
    const before = statSync(join(dirOf('b1'), 'base.tar.gz')).mtimeMs;
    const r = await act.pgBackupCreate({ cluster: CLUSTER, backupId: 'b1', source: 'dc2-db', sourceRole: 'standby' });
    assert.equal(r.created, false, r.detail);
    assert.deepEqual(r.manifest, made);
    assert.deepEqual(readdirSync(clusterDir()), ['b1']);
    assert.equal(statSync(join(dirOf('b1'), 'base.tar.gz')).mtimeMs, before, 'the tarball was not rewritten');
  });

  it("a killed attempt's pg_basebackup still writing into <id>.partial is stopped, its copy thrown away, and the backup made afresh", async (t) => {
    const partial = `${dirOf('b0')}.partial`;
    const c = top.clusters[CLUSTER];
    const src = c.postgres.nodes['dc2-db'];
    const user = c.ssh.user;
    // What a worker killed mid-backup leaves on the backup host: pg_basebackup running on (here
    // rate-limited to 32 kB/s, so it is still at it), its session gone.
    const argv = [
      'env',
      `PGPASSFILE=${backup().passfile}`,
      join(backup().binDir, 'pg_basebackup'),
      '-h',
      src.host,
      '-p',
      String(src.port),
      '-U',
      c.postgres.replication.user,
      '-D',
      partial,
      '-F',
      't',
      '-z',
      '-X',
      'stream',
      '-r',
      '32k',
      '--no-password',
    ];
    const full = process.getuid?.() === 0 && user !== 'root' ? ['runuser', '-u', user, '--', ...argv] : argv;
    const child = spawn(full[0], full.slice(1), { stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    for (let i = 0; i < 300 && !existsSync(join(partial, 'base.tar.gz')); i++) await new Promise((res) => setTimeout(res, 100));
    assert.ok(existsSync(join(partial, 'base.tar.gz')), 'the leftover pg_basebackup is writing');
    assert.equal(child.exitCode, null, 'and still running');

    const r = show('pgBackupCreate (over a leftover)', await act.pgBackupCreate({ cluster: CLUSTER, backupId: 'b0', source: 'dc2-db', sourceRole: 'standby' }));
    assert.equal(r.created, true, r.detail);
    assert.match(r.detail, /stopped an earlier attempt's pg_basebackup/);
    assert.match(r.detail, /removed an unfinished/);
    await exited;
    assert.ok(!existsSync(partial));
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1']);
    for (const f of r.manifest.files) assert.equal(await sha256File(join(dirOf('b0'), f.name)), f.sha256, f.name);
  });

  it('pgBackupList shows them, newest first, with their manifests', async () => {
    const list = show('pgBackupList', await act.pgBackupList({ cluster: CLUSTER }));
    assert.deepEqual(
      list.map((e) => e.backupId),
      ['b0', 'b1'],
    );
    const b1 = list[1];
    assert.equal(b1.complete, true);
    assert.deepEqual(b1.manifest, made);
    assert.equal(b1.drill, null);
    assert.equal(b1.dir, dirOf('b1'));
    assert.ok(b1.modifiedAt);
  });

  it('pgBackupVerify: the files match; an unknown backup is BackupNotFound', async () => {
    const v = await act.pgBackupVerify({ cluster: CLUSTER, backupId: 'b1' });
    assert.deepEqual([v.ok, v.checked, v.problems], [true, 3, []], v.detail);
    await assert.rejects(
      act.pgBackupVerify({ cluster: CLUSTER, backupId: 'nope' }),
      (e: Error & { type?: string; nonRetryable?: boolean }) => e.type === 'BackupNotFound' && e.nonRetryable === true && /nope/.test(e.message),
    );
  });
});

describe('a restore drill', () => {
  it('restores b1 into a scratch copy that has exactly the rows written before the backup, writes drill.json and leaves nothing behind', async () => {
    const rowsNow = await count('dc1-db');
    assert.equal(rowsNow, rowsBeforeBackup + ROWS_AFTER);
    const d = show('pgDrill', await act.pgDrill({ cluster: CLUSTER, backupId: 'b1', workflowId: 'test-drill-1' }));
    assert.equal(d.ok, true, d.failure ?? d.detail);
    assert.equal(d.failure, null);
    assert.equal(d.verify.ok, true);
    assert.equal(d.cleanedUp, true);
    assert.equal(d.scratchDir, scratchOf('b1'));
    assert.equal(d.scratchPort, backup().drillPort);
    const rec = d.record as PgDrillRecord;
    assert.equal(rec.rowCounts['public.sandbox_rows'], rowsBeforeBackup, 'the rows written before the backup, none written after');
    assert.deepEqual(rec.queries, [{ sql: 'SELECT count(*) FROM public.sandbox_rows', ok: true, result: String(rowsBeforeBackup) }]);
    assert.ok(rec.rtoSeconds > 0);
    assert.ok(rec.rpoSeconds >= 0);
    assert.equal(rec.workflowId, 'test-drill-1');
    assert.ok(Math.abs(Date.parse(rec.provenAt) - Date.parse(made.finishedAt) - rec.rpoSeconds * 1000) < 2, 'RPO is provenAt - finishedAt');
    assert.deepEqual(JSON.parse(readFileSync(join(dirOf('b1'), DRILL_FILE), 'utf8')), rec);

    assert.ok(!existsSync(scratchOf('b1')), 'scratch directory removed');
    assert.deepEqual(processesIn(scratchOf('b1')), [], 'no server left running in the scratch copy');
    const host = top.clusters[CLUSTER].hosts[backup().host].address;
    for (const addr of [host, '127.0.0.1']) assert.equal(await tcpAnswers(addr, backup().drillPort), false, `nothing listens on ${addr}:${backup().drillPort}`);
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1']);
    const list = await act.pgBackupList({ cluster: CLUSTER });
    assert.deepEqual(list.find((e) => e.backupId === 'b1')?.drill, rec);
    process.stderr.write(`# drill b1: RTO ${rec.rtoSeconds} s, RPO ${rec.rpoSeconds} s, rows ${JSON.stringify(rec.rowCounts)}\n`);
  });

  it('a retry after a killed attempt stops the scratch server it left running and removes its copy first', async (t) => {
    // What a killed attempt leaves: b1 extracted into the scratch dir and started there.
    const scratch = scratchOf('b1');
    const data = join(scratch, 'data');
    const pgBin = backup().binDir;
    const conf =
      `listen_addresses = ''\nport = ${backup().drillPort}\nunix_socket_directories = '${scratch}'\n` +
      `hba_file = '${data}/pg_hba.conf'\nident_file = '${data}/pg_ident.conf'\nhot_standby = off\nshared_buffers = 16MB\n`;
    const setup = runAsHostUser([
      'sh',
      '-c',
      [
        'set -e',
        'umask 077',
        'mkdir -p "$2/pg_wal"',
        'tar -xzf "$1/base.tar.gz" -C "$2"',
        'tar -xzf "$1/pg_wal.tar.gz" -C "$2/pg_wal"',
        'rm -f "$2/standby.signal"',
        'printf "%s" "$3" > "$2/postgresql.conf"',
        'echo "local all all trust" > "$2/pg_hba.conf"',
        ': > "$2/pg_ident.conf"',
        'printf "" > "$2/postgresql.auto.conf"',
        '"$4/pg_ctl" -D "$2" -l "$5" -w -t 120 start',
      ].join('\n'),
      'sh',
      dirOf('b1'),
      data,
      conf,
      pgBin,
      join(scratch, 'leftover.log'),
    ]);
    assert.equal(setup.status, 0, `${setup.stdout}\n${setup.stderr}`);
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    t.after(() => {
      // Only if the drill did not stop it (a failed run): the server this test started, by its pid.
      if (processesIn(scratch).includes(pid)) process.kill(pid, 'SIGKILL');
    });
    assert.ok(existsSync(`/proc/${pid}`), 'the leftover server runs');

    const d = show('pgDrill (retry)', await act.pgDrill({ cluster: CLUSTER, backupId: 'b1', workflowId: 'test-drill-2' }));
    assert.equal(d.ok, true, d.failure ?? d.detail);
    assert.match(d.detail, new RegExp(`stopped the scratch server \\(pid ${pid}\\)`));
    assert.equal(d.record?.rowCounts['public.sandbox_rows'], rowsBeforeBackup);
    assert.ok(!existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 'the leftover server is gone');
    assert.ok(!existsSync(scratch));
    assert.deepEqual(processesIn(scratch), []);
  });

  it('two drills of one backup take turns: the second waits for the first (they share its scratch copy), both pass', async () => {
    const first = act.pgDrill({ cluster: CLUSTER, backupId: 'b1', workflowId: 'test-drill-turn-1' });
    let firstSettled = false;
    void first.then(
      () => (firstSettled = true),
      () => (firstSettled = true),
    );
    // The first one holds the lock once its scratch copy exists: only then does the second start.
    while (!existsSync(scratchOf('b1'))) {
      assert.equal(firstSettled, false, 'the first drill ended before its scratch copy was seen');
      await new Promise((r) => setTimeout(r, 10));
    }
    const second = act.pgDrill({ cluster: CLUSTER, backupId: 'b1', workflowId: 'test-drill-turn-2' });
    const [a, b] = [show('pgDrill (first)', await first), show('pgDrill (second)', await second)];
    assert.equal(a.ok, true, a.failure ?? a.detail);
    assert.equal(b.ok, true, b.failure ?? b.detail);
    assert.doesNotMatch(a.detail, /waited/);
    assert.match(b.detail, /waited \d+\.\d s for another drill of this backup to finish/);
    assert.doesNotMatch(b.detail, /a leftover scratch server/, 'the second found no scratch copy of the first to take away');
    assert.equal(a.record?.rowCounts['public.sandbox_rows'], rowsBeforeBackup);
    assert.equal(b.record?.rowCounts['public.sandbox_rows'], rowsBeforeBackup);
    assert.ok(Date.parse(a.record!.provenAt) <= Date.parse(b.record!.provenAt));
    assert.equal(
      (JSON.parse(readFileSync(join(dirOf('b1'), DRILL_FILE), 'utf8')) as PgDrillRecord).workflowId,
      'test-drill-turn-2',
      "drill.json is the later drill's",
    );
    assert.ok(!existsSync(scratchOf('b1')));
    assert.deepEqual(processesIn(scratchOf('b1')), []);
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1'], 'nothing else left in the backup root');
  });

  it('a copy with one byte of base.tar.gz changed fails the drill naming the file and its SHA-256, and is not marked restorable', async () => {
    copyBackup('b1', 'b2');
    const tar = join(dirOf('b2'), 'base.tar.gz');
    const rm = join(dirOf('b2'), DRILL_FILE);
    spawnSync('rm', ['-f', rm]);
    const size = statSync(tar).size;
    flipByte(tar);
    assert.equal(statSync(tar).size, size);

    const d = show('pgDrill (corrupt)', await act.pgDrill({ cluster: CLUSTER, backupId: 'b2', workflowId: 'test-drill-3' }));
    assert.equal(d.ok, false);
    assert.match(d.failure ?? '', /base\.tar\.gz/);
    assert.match(d.failure ?? '', /SHA-256/i);
    assert.deepEqual(
      d.verify.problems.map((p) => [p.file, p.problem]),
      [['base.tar.gz', 'sha256']],
    );
    assert.equal(d.record, null);
    assert.ok(!existsSync(rm), 'no drill.json for the corrupted copy');
    assert.ok(!existsSync(scratchOf('b2')), 'the scratch copy was never made (or is gone)');
    assert.deepEqual(processesIn(scratchOf('b2')), []);

    const v = await act.pgBackupVerify({ cluster: CLUSTER, backupId: 'b2' });
    assert.equal(v.ok, false);
    assert.match(v.detail, /base\.tar\.gz has SHA-256/);
    const list = await act.pgBackupList({ cluster: CLUSTER });
    assert.equal(list.find((e) => e.backupId === 'b2')?.drill, null);
  });
});

describe('deleting a backup', () => {
  it('a backup a drill is restoring from is kept (busy, said so); once the drill is done it deletes', async () => {
    // b1 copied as b3: the drill and the deletion get one of their own.
    copyBackup('b1', 'b3');
    rmSync(join(dirOf('b3'), DRILL_FILE), { force: true });
    const path = join(dirOf('b3'), MANIFEST_FILE);
    writeFileSync(path, `${JSON.stringify({ ...(JSON.parse(readFileSync(path, 'utf8')) as PgBackupManifest), backupId: 'b3' }, null, 2)}\n`);
    const drill = act.pgDrill({ cluster: CLUSTER, backupId: 'b3', workflowId: 'test-drill-vs-retention' });
    let settled = false;
    void drill.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!existsSync(scratchOf('b3'))) {
      assert.equal(settled, false, 'the drill ended before its scratch copy was seen');
      await new Promise((r) => setTimeout(r, 10));
    }
    const busy = await act.pgBackupDelete({ cluster: CLUSTER, backupId: 'b3' });
    assert.deepEqual([busy.deleted, busy.busy], [false, true], busy.detail);
    assert.match(busy.detail, /skipped .*b3 .*a drill or a restore is reading it right now/);
    assert.ok(existsSync(join(dirOf('b3'), 'base.tar.gz')), 'the backup is still there');
    const d = show('pgDrill (while retention tried)', await drill);
    assert.equal(d.ok, true, d.failure ?? d.detail);
    const after = await act.pgBackupDelete({ cluster: CLUSTER, backupId: 'b3' });
    assert.deepEqual([after.deleted, after.busy], [true, undefined], after.detail);
    assert.ok(!existsSync(dirOf('b3')));
  });

  it('removes exactly that directory; again is no change; ids outside the root are refused', async () => {
    const r = await act.pgBackupDelete({ cluster: CLUSTER, backupId: 'b2' });
    assert.deepEqual([r.deleted, r.dir], [true, dirOf('b2')], r.detail);
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1']);
    assert.ok(existsSync(join(dirOf('b1'), 'base.tar.gz')) && existsSync(join(dirOf('b1'), DRILL_FILE)), 'b1 untouched');
    const again = await act.pgBackupDelete({ cluster: CLUSTER, backupId: 'b2' });
    assert.equal(again.deleted, false, again.detail);
    for (const id of ['../b1', '..', 'b1/../b0', '']) {
      await assert.rejects(act.pgBackupDelete({ cluster: CLUSTER, backupId: id }), { type: 'ConfigError' }, id);
    }
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1']);
    assert.deepEqual(
      (await act.pgBackupList({ cluster: CLUSTER })).map((e) => e.backupId),
      ['b0', 'b1'],
    );
  });
});

describe('the backup host is never filled', () => {
  /** A copy of b1 whose manifest says something else, owned like a real backup. */
  const doctored = (id: string, change: Partial<PgBackupManifest>) => {
    copyBackup('b1', id);
    rmSync(join(dirOf(id), DRILL_FILE), { force: true }); // b1 was proven; the copy is not
    const m = { ...(JSON.parse(readFileSync(join(dirOf('b1'), MANIFEST_FILE), 'utf8')) as PgBackupManifest), backupId: id, ...change };
    const path = join(dirOf(id), MANIFEST_FILE);
    writeFileSync(path, `${JSON.stringify(m, null, 2)}\n`);
    const st = statSync(dirOf('b1'));
    lchownSync(path, st.uid, st.gid);
  };

  it("a backup expected not to fit (estimated from the newest earlier backup's compression) is refused before pg_basebackup writes anything", async () => {
    // The newest earlier backup compressed 1 byte of databases into all of its files: at that
    // rate today's databases would need far more than any disk here.
    doctored('b8', { databaseBytes: 1, finishedAt: new Date().toISOString() });
    try {
      await assert.rejects(
        act.pgBackupCreate({ cluster: CLUSTER, backupId: 'b9', source: 'dc2-db', sourceRole: 'standby' }),
        (e: Error & { type?: string; nonRetryable?: boolean }) => {
          assert.equal(e.type, 'InsufficientSpace');
          assert.equal(e.nonRetryable, true);
          assert.match(
            e.message,
            new RegExp(
              /^not enough free space on dc2-app for backup b9 of demo: about [\d.]+ \w+ expected /.source +
                /\([\d.]+ \w+ of databases, compressed as backup b8 \([\d.]+ \w+ for 1 B of databases\), plus a quarter\)/.source,
            ),
          );
          assert.match(e.message, /has [\d.]+ \w+ free\. Nothing was written/);
          return true;
        },
      );
      assert.ok(!existsSync(dirOf('b9')) && !existsSync(`${dirOf('b9')}.partial`), 'nothing written for b9');
    } finally {
      rmSync(dirOf('b8'), { recursive: true, force: true });
    }
  });

  it('a drill whose scratch copy would not fit is refused before extracting, and the backup is not marked', async () => {
    doctored('b7', { databaseBytes: 2 ** 50 });
    try {
      await assert.rejects(
        act.pgDrill({ cluster: CLUSTER, backupId: 'b7', workflowId: 'test-drill-huge' }),
        (e: Error & { type?: string; nonRetryable?: boolean }) => {
          assert.equal(e.type, 'InsufficientSpace');
          assert.equal(e.nonRetryable, true);
          assert.match(
            e.message,
            new RegExp(
              /^not enough free space on dc2-app to drill backup b7: its scratch copy takes about 1\.00 PiB /.source +
                /\(the databases' size when backed up\) plus a reserve of [\d.]+ TiB/.source,
            ),
          );
          return true;
        },
      );
      assert.ok(!existsSync(scratchOf('b7')), 'no scratch copy');
      assert.ok(!existsSync(join(dirOf('b7'), DRILL_FILE)), 'not marked restorable');
    } finally {
      rmSync(dirOf('b7'), { recursive: true, force: true });
    }
    assert.deepEqual(readdirSync(clusterDir()).sort(), ['b0', 'b1']);
  });
});
