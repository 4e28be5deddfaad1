/**
 * The backup workflow's EBS copies (backup.ebs.copyTo) on a real Temporal dev server, with the
 * real EBS activities against moto_server and fake PostgreSQL reads: each backup's snapshots are
 * taken together, copied to the second region and awaited; retention there applies the copy
 * region's own policy (keep the last 1, nothing older than 1 s) while the source region keeps its
 * own (the last 7, 14 days); and a restore that names the copy region is refused for the network
 * that region does not have. What exists is read with the test's own EC2 clients, per region.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVolumeCommand,
  AttachVolumeCommand,
  CreateVpcCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RunInstancesCommand,
  type Instance,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createLayoutActivities } from '../../src/activities/cluster-layout';
import { ebsCopyActivities } from '../../src/activities/backup/ebs-copy';
import { ebsRestorePlanActivities } from '../../src/activities/backup/ebs-restore-plan';
import { ebsSnapshotActivities } from '../../src/activities/backup/ebs-snapshot';
import { Runtime } from '../../src/activities/runtime';
import { EBS_TAGS, type PgBackupEntry } from '../../src/contract/backup';
import type { PgNodeStatus } from '../../src/contract/observations';
import type { Progress } from '../../src/contract/messages';
import { loadTools } from '../../src/tools';
import type { BackupResult } from '../../src/workflows/backup';
import type { backup, restore } from '../../src/workflows';
import { canConnect, Daemon, freePort, removeDir, tempDir, topology, waitFor } from '../integration/activities-harness';
import { startTestTemporal, workflowBundle } from '../support/temporal';

const MOTO_ADDR = '127.0.93.2';
const SOURCE = 'eu-west-1';
const COPY = 'eu-central-1';
const KEY_ENV = 'SWITCHYARD_TEST_COPY_KEY_ID';
const SECRET_ENV = 'SWITCHYARD_TEST_COPY_SECRET';

let env: TestWorkflowEnvironment | undefined;
let moto: Daemon | undefined;
let dir: string | undefined;
let src: EC2Client | undefined;
let dst: EC2Client | undefined;
let rt: Runtime;
let db1: Instance;

const tagsOf = (x: { Tags?: { Key?: string; Value?: string }[] }) => Object.fromEntries((x.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

async function snapshotsOf(ec2: EC2Client, backupId: string): Promise<Snapshot[]> {
  const r = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${EBS_TAGS.backupId}`, Values: [backupId] }] }));
  return (r.Snapshots ?? []).sort((a, b) => (tagsOf(a)[EBS_TAGS.device] ?? '').localeCompare(tagsOf(b)[EBS_TAGS.device] ?? ''));
}

before(async () => {
  dir = tempDir('backup-copies');
  const port = await freePort(MOTO_ADDR);
  moto = Daemon.start('moto', loadTools().motoServer, ['-H', MOTO_ADDR, '-p', String(port)], { env: { MOTO_EC2_LOAD_DEFAULT_AMIS: 'false' }, cwd: dir });
  await waitFor('moto_server to listen', async () => canConnect(MOTO_ADDR, port), 60_000).catch((err) => {
    throw new Error(`${err}\n${moto?.output}`);
  });
  const endpoint = `http://${MOTO_ADDR}:${port}`;
  process.env[KEY_ENV] = 'testing-key';
  process.env[SECRET_ENV] = 'testing-secret-value';
  const credentials = { accessKeyId: 'admin', secretAccessKey: 'admin' };
  src = new EC2Client({ region: SOURCE, endpoint, credentials });
  dst = new EC2Client({ region: COPY, endpoint, credentials });

  const vpc = (await src.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId;
  const subnet = (await src.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.1.0/24', AvailabilityZone: `${SOURCE}a` }))).Subnet?.SubnetId;
  const sg = (await src.send(new CreateSecurityGroupCommand({ VpcId: vpc, GroupName: 'db', Description: 'db' }))).GroupId as string;
  const launch = async (node: string, ip: string) =>
    (
      await src!.send(
        new RunInstancesCommand({
          ImageId: 'ami-00000000000000001',
          MinCount: 1,
          MaxCount: 1,
          InstanceType: 't3.small',
          NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnet, Groups: [sg], PrivateIpAddress: ip, DeleteOnTermination: true }],
          TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'switchyard:node', Value: node }] }],
        }),
      )
    ).Instances?.[0] as Instance;
  db1 = await launch('db1', '10.0.1.10');
  await launch('db2', '10.0.1.20');
  const data = (await src.send(new CreateVolumeCommand({ AvailabilityZone: `${SOURCE}a`, Size: 20, VolumeType: 'gp3' }))).VolumeId;
  await src.send(new AttachVolumeCommand({ VolumeId: data, InstanceId: db1.InstanceId, Device: '/dev/sdf' }));

  const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5';
  const top = topology({
    version: 1,
    clusters: {
      main: {
        preferredPrimary: 'dc1',
        sites: { dc1: {}, dc2: {} },
        hosts: { h1: { site: 'dc1', address: '127.0.93.21', hostKey }, h2: { site: 'dc2', address: '127.0.93.22', hostKey } },
        ssh: { user: 'postgres', privateKey: { env: 'UNUSED_KEY' } },
        postgres: {
          user: 'postgres',
          replication: { user: 'postgres' },
          nodes: {
            db1: { site: 'dc1', sshHost: 'h1', host: '127.0.93.21', dataDir: '/x', binDir: '/x', slot: 'db1', ec2: { tags: { 'switchyard:node': 'db1' } } },
            db2: { site: 'dc2', sshHost: 'h2', host: '127.0.93.22', dataDir: '/x', binDir: '/x', slot: 'db2', ec2: { tags: { 'switchyard:node': 'db2' } } },
          },
        },
        ec2: { region: SOURCE, endpoint, credentials: { accessKeyId: { env: KEY_ENV }, secretAccessKey: { env: SECRET_ENV } } },
        backup: { host: 'h2', root: '/x', binDir: '/x', kinds: ['ebs' as const], ebs: { copyTo: [{ region: COPY, keepLast: 1, maxAge: '1s' }] } },
      },
    },
  });
  rt = new Runtime({ topology: () => top, timeouts: { awsConnectMs: 2000, awsRequestMs: 15_000 } });
  env = await startTestTemporal();
  workerActivities = {
    ...createLayoutActivities(() => top),
    ...ebsSnapshotActivities(rt),
    ...ebsCopyActivities(rt),
    ...ebsRestorePlanActivities(rt),
    async pgStatus({ node }: { cluster: string; node: string }): Promise<PgNodeStatus> {
      return node === 'db1'
        ? { cluster: 'main', node, site: 'dc1', reachable: true, inRecovery: false, timeline: 1, currentLsn: '0/3000148' }
        : { cluster: 'main', node, site: 'dc2', reachable: false, unreachable: 'no-answer', error: 'timed out' };
    },
    async pgBackupList(): Promise<PgBackupEntry[]> {
      return [];
    },
  };
});

let workerActivities: Record<string, (...args: never[]) => Promise<unknown>>;

after(async () => {
  await env?.teardown();
  src?.destroy();
  dst?.destroy();
  await moto?.stop();
  removeDir(dir);
  delete process.env[KEY_ENV];
  delete process.env[SECRET_ENV];
});

async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `copies-${randomUUID()}`;
  const worker = await Worker.create({ connection: env!.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: workerActivities });
  return worker.runUntil(fn(taskQueue));
}

async function runBackup(backupId: string): Promise<{ result: BackupResult; steps: Progress['steps'] }> {
  return withWorker(async (taskQueue) => {
    const h = await env!.client.workflow.start<typeof backup>('backup', {
      taskQueue,
      workflowId: `backup-${backupId}-${randomUUID()}`,
      args: [{ cluster: 'main', backupId, requestedBy: 'alice' }],
    });
    const result = await h.result();
    const p = await h.query<Progress>('progress');
    return { result, steps: p.steps };
  });
}

describe('backup with copies in another region', () => {
  let first: BackupResult;

  it('the snapshots are copied to the second region and awaited; the copies carry the backup id, source snapshot and source region', async () => {
    const { result, steps } = await runBackup('w1');
    first = result;
    const names = steps.filter((s) => s.state === 'done').map((s) => s.name);
    for (const step of ['snapshot', 'snapshot-wait', `copy:${COPY}`, `copy-wait:${COPY}`, 'retention', `catalog:ebs:${COPY}`, `retention:${COPY}`])
      assert.ok(names.includes(step), `step ${step} in ${names.join(', ')}`);
    assert.equal(result.copies?.length, 1);
    const c = result.copies![0];
    assert.deepEqual([c.region, c.completed, c.failure, c.created.length], [COPY, true, null, 2]);

    const sources = await snapshotsOf(src!, 'w1');
    assert.equal(sources.length, 2, 'both volumes of db1 snapshotted');
    const copies = await snapshotsOf(dst!, 'w1');
    assert.equal(copies.length, 2);
    for (const s of sources) {
      const mine = copies.filter((x) => tagsOf(x)[EBS_TAGS.sourceSnapshot] === s.SnapshotId);
      assert.equal(mine.length, 1, `one copy of ${s.SnapshotId}`);
      const tags = tagsOf(mine[0]);
      assert.equal(tags[EBS_TAGS.backupId], 'w1');
      assert.equal(tags[EBS_TAGS.sourceRegion], SOURCE);
      assert.equal(tags[EBS_TAGS.device], tagsOf(s)[EBS_TAGS.device]);
      assert.equal(mine[0].State, 'completed');
    }
    assert.deepEqual(c.snapshots.map((x) => x.sourceSnapshotId).sort(), sources.map((s) => s.SnapshotId).sort());
  });

  it("the next backup's retention deletes only the expired copies in the copy region; the source region keeps both backups", async () => {
    await new Promise((r) => setTimeout(r, 1500)); // w1's copies older than the copy region's 1 s
    const { result, steps } = await runBackup('w2');
    const copyRetention = result.retention?.copies?.find((x) => x.region === COPY);
    assert.deepEqual(copyRetention?.deleted, ['w1']);
    assert.deepEqual(
      copyRetention?.decisions.map((d) => [d.backupId, d.action]),
      [
        ['w2', 'keep'],
        ['w1', 'delete'],
      ],
    );
    assert.deepEqual(result.retention?.deleted, [], 'the source region keeps the last 7');
    assert.ok(steps.some((s) => s.name === `delete:${COPY}:w1` && s.state === 'done'));
    assert.deepEqual(await snapshotsOf(dst!, 'w1'), [], "w1's copies are gone");
    assert.equal((await snapshotsOf(dst!, 'w2')).length, 2, "w2's copies stay");
    assert.deepEqual(
      (await snapshotsOf(src!, 'w1')).map((s) => s.SnapshotId).sort(),
      first.ebs!.snapshots.map((s) => s.snapshotId).sort(),
      "w1's snapshots in the source region are untouched",
    );
    assert.equal((await snapshotsOf(src!, 'w2')).length, 2);
  });

  it('a restore naming the copy region is refused before the lock, naming the subnet and group that region lacks', async () => {
    await withWorker(async (taskQueue) => {
      const h = await env!.client.workflow.start<typeof restore>('restore', {
        taskQueue,
        workflowId: `restore-${randomUUID()}`,
        args: [{ cluster: 'main', from: 'w2', target: 'db1', region: COPY, requestedBy: 'alice' }],
      });
      const err = await h.result().then(
        () => assert.fail('the restore completed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      // The workflow's failure is the activity's (ActivityFailure → ApplicationFailure).
      const cause = err.cause as Error & { type?: string; cause?: Error & { type?: string } };
      const failure: Error & { type?: string } = cause.cause ?? cause;
      assert.equal(failure.type, 'BackupUnusable');
      assert.match(failure.message, new RegExp(`^backup w2 cannot be restored in ${COPY}: .* ${COPY} has no subnet subnet-\\w+, no security group sg-\\w+\\.`));
      const p = await h.query<Progress>('progress');
      assert.equal(
        p.steps.some((s) => s.name === 'lock'),
        false,
        'refused before taking the lock',
      );
    });
  });
});
