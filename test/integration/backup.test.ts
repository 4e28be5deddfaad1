/**
 * Backups, drills, retention, schedules and restores end to end on the sandbox (real PostgreSQL,
 * sshd hosts, moto's EC2 API behind a fault-injecting proxy, the Temporal dev server), checked the
 * way an operator would: the snapshots in EC2 and their tags, the files on the backup server and
 * their SHA-256 recomputed here, the rows a drill counted, what retention left, which instance
 * holds the recorded address, the data directory kept aside, and the runs' step logs.
 *
 *   1. backups, drills, retention and a schedule on one stage;
 *   2. restores on a second stage: a base backup onto the primary (rejected at replace-data: staged copy removed; approved
 *      while the standby is frozen: its role is unknown when read again under the lock, so refused with nothing stopped; then approved), EBS
 *      snapshots as a new instance (replace-instance rejected while the original lives; launched
 *      with the recorded address once it is gone);
 *   3. the worker killed with SIGKILL after the snapshot call and during the base backup.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { DescribeInstancesCommand, DescribeSnapshotsCommand, TerminateInstancesCommand, type Snapshot } from '@aws-sdk/client-ec2';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { PgBackupManifest } from '../../src/contract/backup';
import { startPart, stopPart } from '../../sandbox';
import { decide } from '../../src/client/runs';
import type { BackupResult, BackupRetentionResult, DrillResult } from '../../src/workflows/backup';
import type { Progress } from '../../src/contract/messages';
import type { RestoreResult } from '../../src/workflows/restore';
import { freePort } from './activities-harness';
import { cli, killClis, shown } from '../support/cli';
import { FaultProxy } from '../support/fault-proxy';
import { startStage, type Stage } from '../support/stage';
import { failureOf, sleep, stepsNamed, waitReplayed } from '../support/runs';
import { startWorkerProcess, stopWorkerProcesses } from '../support/worker';
import { flipByte } from '../support/files';

const log = (s: string) => process.stdout.write(`# ${s}\n`);
const tag = (s: Snapshot, k: string) => s.Tags?.find((t) => t.Key === k)?.Value;

function ec2Of(st: Stage, endpoint: string): EC2Client {
  const c = st.cluster.ec2!;
  const secret = (f: string | undefined) => readFileSync(f!, 'utf8').trim();
  return new EC2Client({
    region: c.region,
    endpoint,
    credentials: { accessKeyId: secret(c.credentials!.accessKeyId.file), secretAccessKey: secret(c.credentials!.secretAccessKey.file) },
  });
}

async function snapshotsOf(ec2: EC2Client, backupId: string): Promise<Snapshot[]> {
  const r = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'tag:switchyard:backup-id', Values: [backupId] }] }));
  return r.Snapshots ?? [];
}

async function instanceOf(ec2: EC2Client, node: string): Promise<{ id: string; ip: string | null; state: string; volumes: string[] }[]> {
  const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:switchyard:node', Values: [node] }] }));
  return (r.Reservations ?? [])
    .flatMap((x) => x.Instances ?? [])
    .map((i) => ({
      id: i.InstanceId!,
      ip: i.PrivateIpAddress ?? null,
      state: i.State?.Name ?? '?',
      volumes: (i.BlockDeviceMappings ?? []).map((b) => b.Ebs?.VolumeId ?? '').filter(Boolean),
    }));
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The backup directories on the backup server (complete and partial), read from disk here. */
function backupDirs(st: Stage): string[] {
  const dir = join(st.cluster.backup!.root, 'demo');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

async function rowsIn(st: Stage, node: string): Promise<number> {
  return Number((await st.nodeQuery(node, 'SELECT count(*)::int AS n FROM public.sandbox_rows'))[0].n);
}

async function runBackup(st: Stage, input: object, id: string): Promise<BackupResult> {
  const h = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', ...input }, id);
  return (await h.result()) as BackupResult;
}

// ---------------------------------------------------------------------------------------------

describe('backups, drills, retention and a schedule', () => {
  let st: Stage;
  let proxy: FaultProxy;
  let ec2: EC2Client;
  let motoUrl = '';
  before(async () => {
    const port = await freePort('127.0.0.1');
    st = await startStage({
      edit: (c) => {
        const e = c.ec2 as { endpoint: string };
        motoUrl = e.endpoint;
        e.endpoint = `http://127.0.0.1:${port}`;
      },
    });
    proxy = await FaultProxy.start(motoUrl, '127.0.0.1', port);
    ec2 = ec2Of(st, motoUrl);
  });
  after(async () => {
    killClis();
    ec2?.destroy();
    await proxy?.stop();
    await st?.down();
  });

  let first: BackupResult;
  let rowsBeforeFirst = 0;

  it('a backup makes one tagged snapshot per volume of the standby and a base backup whose manifest matches its files', async () => {
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'before the first backup ' || g FROM generate_series(1, 50) g`);
    await waitReplayed(st, 'dc2-db', 'dc1-db');
    rowsBeforeFirst = await rowsIn(st, 'dc1-db');
    const id = `backup-first-${Date.now()}`;
    first = await runBackup(st, {}, id);
    assert.equal(first.backupId, id, 'the backup id is the workflow id when none is given');
    assert.deepEqual(first.source, { node: 'dc2-db', role: 'standby', why: first.source.why });
    assert.match(first.source.why, /primary is spared/);

    // EC2, read with the test's own client straight from moto.
    const [inst] = (await instanceOf(ec2, 'dc2-db')).filter((i) => i.state === 'running');
    const snaps = await snapshotsOf(ec2, id);
    assert.equal(snaps.length, inst.volumes.length, `one snapshot per volume of ${inst.id}`);
    assert.deepEqual(snaps.map((s) => s.VolumeId).sort(), [...inst.volumes].sort());
    for (const s of snaps) {
      assert.equal(tag(s, 'switchyard:cluster'), 'demo');
      assert.equal(tag(s, 'switchyard:backup-id'), id);
      assert.equal(tag(s, 'switchyard:node'), 'dc2-db');
      assert.equal(tag(s, 'switchyard:workflow-id'), id);
      assert.equal(tag(s, 'switchyard:created-by'), 'alice');
      assert.equal(tag(s, 'switchyard:device'), '/dev/sda1');
      // One description for the set (CreateSnapshots takes the instance's volumes together).
      assert.match(s.Description ?? '', new RegExp(`^switchyard backup ${id} of dc2-db \\(i-[0-9a-f]+, \\d+ volumes? taken together\\) \\d{4}-\\d\\d-\\d\\dT`));
      assert.equal(s.State, 'completed');
    }
    assert.deepEqual(first.ebs?.snapshots.map((s) => s.snapshotId).sort(), snaps.map((s) => s.SnapshotId).sort());

    // The base backup on disk, checked here against its manifest.
    const dir = join(st.cluster.backup!.root, 'demo', id);
    assert.equal(first.pg?.dir, dir);
    const manifest = JSON.parse(readFileSync(join(dir, 'switchyard-manifest.json'), 'utf8')) as PgBackupManifest;
    assert.equal(manifest.backupId, id);
    assert.equal(manifest.sourceNode, 'dc2-db');
    assert.match(manifest.startLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(manifest.endLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(manifest.pgMajor, 15);
    assert.ok(manifest.timeline >= 1);
    // Beside the base backup's files: its manifest, the store's record of its objects, and the file sets (files/<set>/).
    const onDisk = readdirSync(dir)
      .filter((f) => !['switchyard-manifest.json', 'drill.json', 'switchyard-store.json', 'files'].includes(f))
      .sort();
    assert.ok(existsSync(join(dir, 'switchyard-store.json')), 'uploaded to the store');
    assert.ok(statSync(join(dir, 'files', 'ca')).isDirectory(), 'the file set "ca" archived with it');
    assert.deepEqual(manifest.files.map((f) => f.name).sort(), onDisk, 'the manifest lists every file');
    assert.ok(onDisk.includes('base.tar.gz') && onDisk.includes('pg_wal.tar.gz'), onDisk.join(', '));
    for (const f of manifest.files) {
      assert.equal(statSync(join(dir, f.name)).size, f.bytes, `${f.name} size`);
      assert.equal(await sha256(join(dir, f.name)), f.sha256, `${f.name} SHA-256`);
    }
    assert.equal(
      manifest.totalBytes,
      manifest.files.reduce((n, f) => n + f.bytes, 0),
    );
    assert.deepEqual(
      backupDirs(st).filter((d) => d.endsWith('.partial')),
      [],
      'nothing partial left',
    );

    const p = await (await st.client.workflow.getHandle(id)).query<Progress>('progress');
    const names = p.steps.filter((s) => s.state === 'done').map((s) => s.name);
    for (const step of ['source', 'snapshot', 'base-backup', 'snapshot-wait', 'retention'])
      assert.ok(names.includes(step), `step ${step} in ${names.join(', ')}`);
    assert.equal(stepsNamed(p, /^lock$/).length, 0, 'a backup takes no cluster lock (never blocks a failover)');
    log(
      `first backup: base backup ${manifest.totalBytes} bytes in ${first.pg?.durationSeconds} s; ${snaps.length} snapshots in ${first.ebs?.durationSeconds} s`,
    );
  });

  let second: BackupResult;
  it('EC2 throttling and 5xx answers are retried; the retries show in the step log; still one snapshot per volume', async () => {
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'between the backups ' || g FROM generate_series(1, 20) g`);
    await waitReplayed(st, 'dc2-db', 'dc1-db');
    proxy.inject({ kind: 'throttle', count: 2, action: 'CreateSnapshots' });
    proxy.inject({ kind: 'internal', count: 1, action: 'DescribeSnapshots' });
    proxy.inject({ kind: 'unavailable', count: 1, action: 'DescribeInstances' });
    const id = `backup-faults-${Date.now()}`;
    second = await runBackup(st, { kinds: ['ebs', 'pg'] }, id);
    assert.equal(proxy.pending, 0, 'every fault was injected');
    assert.ok(proxy.injected >= 4, `${proxy.injected} faults answered`);
    const [inst] = (await instanceOf(ec2, 'dc2-db')).filter((i) => i.state === 'running');
    const snaps = await snapshotsOf(ec2, id);
    assert.equal(snaps.length, inst.volumes.length, 'one snapshot per volume despite the throttled CreateSnapshots calls');
    assert.ok((second.ebs?.apiRetries ?? 0) >= 3, `retries counted: ${second.ebs?.apiRetries}`);
    const p = await (await st.client.workflow.getHandle(id)).query<Progress>('progress');
    const snapStep = stepsNamed(p, /^snapshot$/).find((s) => s.state === 'done')!;
    assert.match(snapStep.detail, /retr/i, `the snapshot step says it retried: ${snapStep.detail}`);
    log(`with faults: ${second.ebs?.apiRetries} EC2 API retries; step: ${snapStep.detail}`);
  });

  it('a drill restores the newest backup into a scratch copy and finds the rows written before it; nothing is left behind', async () => {
    const rowsBefore = await rowsIn(st, 'dc1-db');
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'after the backups ' || g FROM generate_series(1, 30) g`);
    const h = await st.start('drill', { cluster: 'demo', requestedBy: 'alice' }, `drill-${Date.now()}`);
    // A failed drill says why and what its steps saw (a drill once failed here on a loaded machine with no more than that).
    const d = (await h.result().catch(async (err: unknown) => {
      const f = await failureOf(Promise.reject(err));
      const steps = (await h.query<Progress>('progress')).steps.map((s) => `${s.state} ${s.name}: ${s.detail}`).join('\n');
      assert.fail(`the drill failed (${f.type}): ${f.message}\n${steps}`);
    })) as DrillResult;
    assert.equal(d.backupId, second.backupId, 'the newest backup by default');
    assert.equal(d.ok, true, d.detail);
    assert.equal(d.rowCounts['public.sandbox_rows'], rowsBefore, 'exactly the rows written before the backup');
    assert.ok(rowsBefore > rowsBeforeFirst);
    assert.ok(d.rtoSeconds !== null && d.rtoSeconds > 0);
    assert.ok(d.rpoSeconds !== null && d.rpoSeconds >= 0);
    const rec = JSON.parse(readFileSync(join(st.cluster.backup!.root, 'demo', second.backupId, 'drill.json'), 'utf8')) as {
      provenAt: string;
      rowCounts: Record<string, number>;
    };
    assert.equal(rec.rowCounts['public.sandbox_rows'], rowsBefore, 'drill.json marks it proven');
    assert.deepEqual(
      backupDirs(st).filter((x) => x.startsWith('.drill')),
      [],
      'the scratch copy is removed',
    );
    const port = st.cluster.backup!.drillPort;
    assert.equal(
      execFileSync('sh', ['-c', `ss -ltn 'sport = :${port}' | tail -n +2 | wc -l`])
        .toString()
        .trim(),
      '0',
      `nothing listens on the drill port ${port}`,
    );
    log(`drill: ${d.detail}`);
  });

  it('a corrupted backup (one byte changed) fails the manifest check with a clear message and is not marked restorable', async () => {
    const root = join(st.cluster.backup!.root, 'demo');
    const copy = `corrupt-${Date.now()}`;
    execFileSync('cp', ['-a', join(root, first.backupId), join(root, copy)]);
    execFileSync('rm', ['-f', join(root, copy, 'drill.json')]);
    const file = join(root, copy, 'base.tar.gz');
    flipByte(file);
    const h = await st.start('drill', { cluster: 'demo', from: copy, requestedBy: 'alice' }, `drill-corrupt-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'DrillFailed', f.message);
    assert.match(f.message, /base\.tar\.gz/);
    assert.match(f.message, /SHA-256|sha256/i);
    assert.equal(existsSync(join(root, copy, 'drill.json')), false, 'not marked restorable');
    assert.deepEqual(
      backupDirs(st).filter((x) => x.startsWith('.drill')),
      [],
      'no scratch copy left',
    );
  });

  it('retention removes exactly the expired backups and keeps the newest proven-restorable one', async () => {
    const third = await runBackup(st, { kinds: ['pg', 'ebs'], retention: false }, `backup-third-${Date.now()}`);
    const before = backupDirs(st);
    assert.ok(
      [first.backupId, second.backupId, third.backupId].every((b) => before.includes(b)),
      before.join(', '),
    );
    // Dry run: decisions, nothing deleted.
    const dry = (await (
      await st.start('backupRetention', { cluster: 'demo', dryRun: true, keepLast: 1, maxAge: '1s' }, `retention-dry-${Date.now()}`)
    ).result()) as BackupRetentionResult;
    const decisions = Object.fromEntries(dry.decisions.map((d) => [d.backupId, d.action]));
    assert.deepEqual(backupDirs(st), before, 'a dry run deletes nothing');
    assert.equal(decisions[third.backupId], 'keep', 'the last one');
    assert.equal(decisions[second.backupId], 'keep', 'the newest proven-restorable one, though not among the last 1 and older than 1 s');
    assert.equal(decisions[first.backupId], 'delete');
    const expired = dry.decisions
      .filter((d) => d.action === 'delete')
      .map((d) => d.backupId)
      .sort();

    const h = await st.start('backupRetention', { cluster: 'demo', keepLast: 1, maxAge: '1s', requestedBy: 'alice' }, `retention-${Date.now()}`);
    const r = (await h.result()) as BackupRetentionResult;
    assert.deepEqual([...r.deleted].sort(), expired);
    assert.deepEqual(r.failed, []);
    const left = backupDirs(st);
    assert.deepEqual(left.sort(), before.filter((b) => !expired.includes(b)).sort(), 'exactly the expired directories are gone');
    assert.deepEqual(await snapshotsOf(ec2, first.backupId), [], `the snapshots of ${first.backupId} are gone`);
    assert.ok((await snapshotsOf(ec2, second.backupId)).length > 0, `the snapshots of ${second.backupId} stay`);
    assert.ok((await snapshotsOf(ec2, third.backupId)).length > 0, `the snapshots of ${third.backupId} stay`);
    const p = await h.query<Progress>('progress');
    assert.deepEqual(
      stepsNamed(p, /^delete:/)
        .map((s) => s.name.slice('delete:'.length))
        .sort(),
      expired,
      'each deletion is in the step log',
    );
  });

  it('`switchyard backup --dry-run` names the source and what it would make and delete, and changes nothing', async () => {
    const dirs = backupDirs(st);
    const before = (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }))).Snapshots?.length ?? 0;
    const r = await cli(st, ['backup', 'demo', '--dry-run', '--as', 'alice', '--json']);
    assert.equal(r.code, 0, shown(r));
    const run = JSON.parse(r.stdout) as { result: BackupResult; progress: Progress };
    assert.equal(run.result.dryRun, true);
    assert.equal(run.result.source.node, 'dc2-db');
    assert.deepEqual(
      run.result.plan.map((p) => p.step),
      ['snapshot', 'base-backup', 'upload', 'files:ca', 'retention'],
    );
    assert.ok(run.result.retention?.dryRun === true && run.result.retention.decisions.length >= 2, JSON.stringify(run.result.retention));
    assert.deepEqual(backupDirs(st), dirs, 'nothing made or deleted on the backup server');
    assert.equal((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }))).Snapshots?.length ?? 0, before, 'no snapshot made or deleted');
    assert.equal(stepsNamed(run.progress, /^(snapshot|base-backup)$/).length, 0);
  });

  it('a schedule created with the CLI runs a backup when triggered, and is listed, paused, resumed and deleted', async () => {
    const made = await cli(st, [
      'schedule',
      'backup',
      'demo',
      '--cron',
      '0 3 1 1 *',
      '--keep-last',
      '20',
      '--max-age',
      '30d',
      '--kinds',
      'pg',
      '--as',
      'alice',
      '--json',
    ]);
    assert.equal(made.code, 0, shown(made));
    assert.equal(JSON.parse(made.stdout).created, 'switchyard-backup-demo');
    const bad = await cli(st, ['schedule', 'backup', 'demo', '--cron', 'every day']);
    assert.equal(bad.code, 2, shown(bad));
    assert.match(bad.stderr, /--cron: expected five cron fields/);

    const t = await cli(st, ['schedule', 'trigger', 'demo', '--as', 'alice', '--json']);
    assert.equal(t.code, 0, shown(t));
    let runId: string | undefined;
    for (const t0 = Date.now(); !runId; await sleep(500)) {
      const d = JSON.parse((await cli(st, ['schedule', 'describe', 'demo', '--json'])).stdout) as {
        recentRuns: { workflowId: string | null }[];
        running: string[];
      };
      runId = d.recentRuns[0]?.workflowId ?? d.running[0];
      assert.ok(Date.now() - t0 < 60_000, 'the schedule started a run');
    }
    assert.match(runId, /^switchyard-backup-demo-/);
    const r = (await st.client.workflow.getHandle(runId).result()) as BackupResult;
    assert.equal(r.ebs, null, 'kinds pg only, as scheduled');
    assert.ok(r.pg && existsSync(join(r.pg.dir, 'switchyard-manifest.json')), 'the scheduled run made a complete base backup');
    assert.ok(backupDirs(st).includes(r.backupId));
    assert.equal(r.retention?.decisions.filter((d) => d.action === 'delete').length, 0, 'keep-last 20 deletes nothing');

    const paused = await cli(st, ['schedule', 'pause', 'demo', '--as', 'bob', '--json']);
    assert.equal(paused.code, 0, shown(paused));
    assert.equal(JSON.parse(paused.stdout).paused, true);
    const list = JSON.parse((await cli(st, ['schedule', 'list', '--json'])).stdout) as { scheduleId: string; paused: boolean }[];
    assert.deepEqual(
      list.map((s) => [s.scheduleId, s.paused]),
      [['switchyard-backup-demo', true]],
    );
    assert.equal(JSON.parse((await cli(st, ['schedule', 'resume', 'demo', '--json'])).stdout).paused, false);
    const del = await cli(st, ['schedule', 'delete', 'demo']);
    assert.equal(del.code, 0, shown(del));
    const gone = await cli(st, ['schedule', 'describe', 'demo']);
    assert.equal(gone.code, 2, shown(gone));
    assert.match(gone.stderr, /no backup schedule "switchyard-backup-demo"/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('restores: a base backup onto the primary, EBS snapshots as a new instance', () => {
  let st: Stage;
  let ec2: EC2Client;
  before(async () => {
    st = await startStage();
    ec2 = ec2Of(st, st.cluster.ec2!.endpoint!);
  });
  after(async () => {
    ec2?.destroy();
    await st?.down();
  });

  it('restore from a base backup keeps the old data directory aside and brings back exactly the rows of the backup', async () => {
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'in the backup ' || g FROM generate_series(1, 40) g`);
    await waitReplayed(st, 'dc2-db', 'dc1-db');
    const rows = await rowsIn(st, 'dc1-db');
    const b = await runBackup(st, { kinds: ['pg'] }, `backup-for-restore-${Date.now()}`);
    await st.nodeQuery('dc1-db', `INSERT INTO public.sandbox_rows (note) SELECT 'after the backup ' || g FROM generate_series(1, 25) g`);
    const dataDir = st.cluster.postgres.nodes['dc1-db'].dataDir;
    const ino = statSync(dataDir).ino;

    // Onto the standby, beside a live primary: refused, nothing changed.
    const refusedRun = await st.start(
      'restore',
      { cluster: 'demo', from: b.backupId, target: 'dc2-db', requestedBy: 'alice' },
      `restore-refused-${Date.now()}`,
    );
    const f = await failureOf(refusedRun.result());
    assert.match(f.message, /dc1-db is a live primary.*second primary/);

    // Rejected at replace-data: dc1 keeps its data, and the staged copy does not stay on its disk.
    const staging = `${dataDir}.switchyard-restore-${b.backupId}`;
    const no = await st.start('restore', { cluster: 'demo', from: b.backupId, target: 'dc1-db', requestedBy: 'alice' }, `restore-pg-rejected-${Date.now()}`);
    await st.waitProgress(no.workflowId, (p) => p.waitingFor === 'replace-data', 'the replace-data checkpoint', 180_000);
    assert.ok(existsSync(join(staging, 'base.tar.gz')), 'the backup is staged beside the data directory while the run asks');
    await decide(st.client, no.workflowId, { checkpoint: 'replace-data', decision: 'reject', by: 'bob', comment: 'wrong backup' });
    const rejected = (await no.result()) as RestoreResult;
    assert.equal(rejected.outcome, 'aborted');
    assert.match(rejected.abortedBecause ?? '', /replace-data rejected by bob/);
    assert.equal(rejected.state, 'nothing was changed: dc1-db keeps its data');
    assert.ok(!existsSync(staging), 'the staged copy was removed');
    const np = await no.query<Progress>('progress');
    assert.match(stepsNamed(np, /^discard-stage$/)[0]?.detail ?? '', new RegExp(`removed the staged copy of backup ${b.backupId}`));
    assert.equal(stepsNamed(np, /^(stop|swap|start)$/).length, 0, 'nothing stopped or swapped');
    assert.equal(statSync(dataDir).ino, ino, 'the same data directory');
    assert.equal(await rowsIn(st, 'dc1-db'), rows + 25, 'every row still there');

    // Approved while dc2 is frozen (SIGSTOP): read again under the lock right before the stop, its
    // role is unknown, so it may be a live primary: refused, dc1 never stopped, the copy removed.
    const frozen = await st.start(
      'restore',
      { cluster: 'demo', from: b.backupId, target: 'dc1-db', requestedBy: 'alice' },
      `restore-pg-frozen-standby-${Date.now()}`,
    );
    await st.waitProgress(frozen.workflowId, (p) => p.waitingFor === 'replace-data', 'the replace-data checkpoint', 180_000);
    await stopPart(st.sb.opts, 'dc2-db/postgres', 'pause');
    try {
      await decide(st.client, frozen.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
      const f = await failureOf(frozen.result());
      assert.equal(f.type, 'PreconditionFailed');
      assert.match(
        f.message,
        /^the role of dc2-db cannot be read \(unreachable: .+\), so it may be a live primary of demo \(seen under the lock, right before stopping dc1-db\): restoring .+ onto dc1-db could start a second primary, so nothing was stopped\. Bring dc2-db back so its role can be read \(`switchyard check demo`\)/,
      );
    } finally {
      await startPart(st.sb.opts, 'dc2-db/postgres');
    }
    const fp = await frozen.query<Progress>('progress');
    assert.deepEqual(
      stepsNamed(fp, /^recheck:/)
        .map((x) => [x.name, x.state])
        .sort(),
      [
        ['recheck:dc1-db', 'done'],
        ['recheck:dc2-db', 'done'],
      ],
    );
    assert.equal(stepsNamed(fp, /^(stop|swap|start)$/).length, 0, 'nothing stopped or swapped');
    assert.ok(!existsSync(staging), 'the staged copy was removed');
    assert.equal(statSync(dataDir).ino, ino, 'the same data directory');
    assert.equal(await rowsIn(st, 'dc1-db'), rows + 25, 'dc1 kept every row and still answers');

    const h = await st.start('restore', { cluster: 'demo', from: b.backupId, target: 'dc1-db', requestedBy: 'alice' }, `restore-pg-${Date.now()}`);
    await st.waitProgress(h.workflowId, (p) => p.waitingFor === 'replace-data', 'the replace-data checkpoint', 180_000);
    assert.equal(await rowsIn(st, 'dc1-db'), rows + 25, 'nothing replaced while the run waits');
    const answer = await decide(st.client, h.workflowId, { checkpoint: 'replace-data', decision: 'approve', by: 'bob' });
    assert.equal(answer.accepted, true);
    const r = (await h.result()) as RestoreResult;
    assert.equal(r.outcome, 'completed', r.state);
    assert.equal(await rowsIn(st, 'dc1-db'), rows, 'exactly the rows of the backup');
    assert.equal((await st.nodeQuery('dc1-db', 'SELECT pg_is_in_recovery() AS r'))[0].r, false, 'dc1 is a primary again');
    assert.ok(r.movedAside && existsSync(join(r.movedAside, 'PG_VERSION')), `the old data directory is kept at ${r.movedAside}`);
    assert.equal(statSync(r.movedAside).ino, ino, 'it is the old directory itself, moved');
    assert.match(r.state, /rejoin/);
  });

  it('restore from EBS snapshots waits at replace-instance while the original holds the address; launches with it once the original is gone', async () => {
    const b = await runBackup(st, { kinds: ['ebs'] }, `backup-ebs-${Date.now()}`);
    const node = b.source.node;
    const [orig] = (await instanceOf(ec2, node)).filter((i) => i.state === 'running');
    assert.ok(orig.ip, 'the original has a private IP');

    const h = await st.start('restore', { cluster: 'demo', from: b.backupId, target: node, kind: 'ebs', requestedBy: 'alice' }, `restore-ebs-${Date.now()}`);
    await st.waitProgress(h.workflowId, (p) => p.waitingFor === 'replace-instance', 'the replace-instance checkpoint', 120_000);
    assert.deepEqual(
      (await instanceOf(ec2, node)).map((i) => [i.id, i.state]),
      [[orig.id, 'running']],
      'nothing terminated or launched while it waits',
    );
    await decide(st.client, h.workflowId, { checkpoint: 'replace-instance', decision: 'reject', by: 'bob', comment: 'not yet' });
    const aborted = (await h.result()) as RestoreResult;
    assert.equal(aborted.outcome, 'aborted');
    assert.match(aborted.abortedBecause ?? '', /replace-instance rejected by bob/);
    assert.deepEqual(
      (await instanceOf(ec2, node)).map((i) => [i.id, i.state]),
      [[orig.id, 'running']],
      'the original still runs',
    );

    // The original is lost (terminated outside switchyard): the restore runs without asking.
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [orig.id] }));
    const gone = await st.start(
      'restore',
      { cluster: 'demo', from: b.backupId, target: node, kind: 'ebs', requestedBy: 'alice' },
      `restore-ebs-gone-${Date.now()}`,
    );
    const r = (await gone.result().catch(async (err: unknown) => {
      const p = await gone.query<Progress>('progress').catch(() => null);
      throw new Error(`${String(err)}: ${(err as { cause?: Error }).cause?.message}\n${p?.steps.map((s) => `${s.name} ${s.state}: ${s.detail}`).join('\n')}`);
    })) as RestoreResult;
    assert.equal(r.outcome, 'completed', r.state);
    assert.deepEqual(r.checkpoints, [], 'no checkpoint: nothing held the address');
    const live = (await instanceOf(ec2, node)).filter((i) => i.state === 'running');
    assert.equal(live.length, 1, 'one live instance for the node');
    assert.equal(live[0].id, r.instance?.instanceId);
    assert.notEqual(live[0].id, orig.id);
    assert.equal(live[0].ip, orig.ip, 'with the recorded private IP');
  });
});

// ---------------------------------------------------------------------------------------------

describe('backup: the worker killed with SIGKILL after the snapshot call and during the base backup', () => {
  let st: Stage;
  let ec2: EC2Client;
  before(async () => {
    st = await startStage({ worker: false });
    ec2 = ec2Of(st, st.cluster.ec2!.endpoint!);
  });
  after(async () => {
    await stopWorkerProcesses();
    ec2?.destroy();
    await st?.down();
  });

  it('restarted workers finish each run: exactly one snapshot per volume, exactly one base backup', { timeout: 300_000 }, async () => {
    const worker = () => startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    // Enough data, not too compressible, that the base backup takes seconds here.
    await st.nodeQuery(
      'dc1-db',
      `CREATE TABLE public.big AS SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 30) AS pad FROM generate_series(1, 200000) g`,
    );
    await waitReplayed(st, 'dc2-db', 'dc1-db', 120_000);
    let w = worker();
    await w.waitFor((l) => l.msg === 'worker started');

    // 1. Killed as soon as EC2 has the snapshot: the call was made, its answer maybe never recorded.
    const snapId = `backup-crash-ebs-${Date.now()}`;
    const hs = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['ebs'] }, snapId);
    for (const t0 = Date.now(); (await snapshotsOf(ec2, snapId)).length === 0; await sleep(20))
      assert.ok(Date.now() - t0 < 120_000, 'the snapshot call was made');
    assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');
    w = worker();
    const rs = (await hs.result()) as BackupResult;
    const [inst] = (await instanceOf(ec2, rs.source.node)).filter((i) => i.state === 'running');
    const snaps = await snapshotsOf(ec2, snapId);
    assert.equal(snaps.length, inst.volumes.length, `exactly one snapshot per volume: ${snaps.map((x) => x.SnapshotId).join(', ')}`);
    assert.deepEqual(snaps.map((x) => x.VolumeId).sort(), [...inst.volumes].sort());

    // 2. Killed while pg_basebackup writes into <id>.partial.
    const id = `backup-crash-pg-${Date.now()}`;
    const partial = join(st.cluster.backup!.root, 'demo', `${id}.partial`);
    const h = await st.start('backup', { cluster: 'demo', requestedBy: 'alice', kinds: ['pg'] }, id);
    for (const t0 = Date.now(); !existsSync(partial) || readdirSync(partial).length === 0; await sleep(20))
      assert.ok(Date.now() - t0 < 120_000, 'pg_basebackup began writing');
    await sleep(300);
    assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');
    assert.ok(existsSync(partial), 'killed before the copy was complete');
    log(`killed during the base backup; ${readdirSync(partial).join(', ')} begun`);
    w = worker();
    const r = (await h.result()) as BackupResult;
    assert.deepEqual(
      backupDirs(st).filter((d) => d.startsWith(id)),
      [id],
      'one base backup, nothing partial',
    );
    const manifest = JSON.parse(readFileSync(join(st.cluster.backup!.root, 'demo', id, 'switchyard-manifest.json'), 'utf8')) as PgBackupManifest;
    for (const f of manifest.files) assert.equal(await sha256(join(st.cluster.backup!.root, 'demo', id, f.name)), f.sha256, `${f.name} matches`);
    log(`backup after a crash mid-copy: ${r.durationSeconds} s; ${manifest.totalBytes} bytes`);
    await w.stop();
  });
});
