/**
 * The EBS backup and restore activities against a real moto_server (127.0.93.1), reached through
 * the fault-injecting proxy (test/support/fault-proxy.ts) so throttling, 5xx and lost answers are
 * real HTTP answers the AWS SDK must cope with. What exists afterwards (snapshots, their tags, the
 * restored instance's address, groups, subnet, type, tags and volumes) is read with the test's own
 * EC2 client straight from moto, not through the activities.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AttachVolumeCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVolumeCommand,
  CreateVpcCommand,
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import { ebsCopyActivities } from '../../src/activities/backup/ebs-copy';
import { ebsRestoreActivities } from '../../src/activities/backup/ebs-restore';
import { ebsRestorePlanActivities } from '../../src/activities/backup/ebs-restore-plan';
import { ebsSnapshotActivities } from '../../src/activities/backup/ebs-snapshot';
import { EBS_TAGS } from '../../src/contract/backup';
import { Runtime } from '../../src/activities/runtime';
import type { Topology } from '../../src/topology/schema';
import { clusterLayout } from '../../src/topology/layout';
import { catalog, planRetention } from '../../src/workflows/lib/retention';
import { loadTools } from '../../src/tools';
import { FaultProxy } from '../support/fault-proxy';
import { canConnect, Daemon, freePort, rejection, removeDir, tempDir, topology, waitFor } from './activities-harness';

const MOTO_ADDR = '127.0.93.1';
/** The region backup.ebs.copyTo copies to (the source is eu-west-1). */
const COPY_REGION = 'eu-central-1';
const DB1_IP = '10.0.1.10';
const DB2_IP = '10.0.1.20';
const KEY_ENV = 'SWITCHYARD_TEST_EBS_KEY_ID';
const SECRET_ENV = 'SWITCHYARD_TEST_EBS_SECRET';
const NODE_TAGS = { 'switchyard:node': 'dc1-db', Name: 'dc1-db', team: 'data' };

let dir: string | undefined;
let moto: Daemon | undefined;
let proxy: FaultProxy | undefined;
let admin: EC2Client | undefined;
/** The test's own client in the copy region. */
let adminCopy: EC2Client | undefined;
let top: Topology;
type EbsActivities = ReturnType<typeof ebsSnapshotActivities> &
  ReturnType<typeof ebsCopyActivities> &
  ReturnType<typeof ebsRestorePlanActivities> &
  ReturnType<typeof ebsRestoreActivities>;
let act: EbsActivities;
let subnet: string;
let sgDb: string;
let sgAdmin: string;
let db1: Instance;
let db2: Instance;
let dataVolume: string;
let rootVolume: string;

const tagsOf = (x: { Tags?: { Key?: string; Value?: string }[] }) => Object.fromEntries((x.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

/** Snapshots of one backup, as moto has them (in the copy region: its copies). */
async function snapshotsOf(backupId: string, ec2: EC2Client = admin!): Promise<Snapshot[]> {
  const r = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${EBS_TAGS.cluster}`, Values: ['main'] },
        { Name: `tag:${EBS_TAGS.backupId}`, Values: [backupId] },
      ],
    }),
  );
  return (r.Snapshots ?? []).sort((a, b) => (tagsOf(a)[EBS_TAGS.device] ?? '').localeCompare(tagsOf(b)[EBS_TAGS.device] ?? ''));
}

async function instance(id: string): Promise<Instance> {
  return (await admin!.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]?.Instances?.[0] as Instance;
}

/** Live instances carrying the node's selector tag. */
async function liveNodeInstances(): Promise<Instance[]> {
  const r = await admin!.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'tag:switchyard:node', Values: ['dc1-db'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] },
      ],
    }),
  );
  return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []);
}

const groupsOf = (i: Instance) => {
  const own = (i.SecurityGroups ?? []).map((g) => g.GroupId);
  return (own.length ? own : (i.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.Groups ?? []).map((g) => g.GroupId)).sort();
};

before(async () => {
  dir = tempDir('backup-ebs');
  const port = await freePort(MOTO_ADDR);
  moto = Daemon.start('moto', loadTools().motoServer, ['-H', MOTO_ADDR, '-p', String(port)], { env: { MOTO_EC2_LOAD_DEFAULT_AMIS: 'false' }, cwd: dir });
  await waitFor('moto_server to listen', async () => canConnect(MOTO_ADDR, port), 60_000).catch((err) => {
    throw new Error(`${err}\n${moto?.output}`);
  });
  const endpoint = `http://${MOTO_ADDR}:${port}`;
  proxy = await FaultProxy.start(endpoint, MOTO_ADDR);
  process.env[KEY_ENV] = 'testing-key';
  process.env[SECRET_ENV] = 'testing-secret-value';
  admin = new EC2Client({ region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });
  adminCopy = new EC2Client({ region: COPY_REGION, endpoint, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });

  const vpc = (await admin.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId;
  subnet = (await admin.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.1.0/24', AvailabilityZone: 'eu-west-1a' }))).Subnet?.SubnetId as string;
  sgDb = (await admin.send(new CreateSecurityGroupCommand({ VpcId: vpc, GroupName: 'db', Description: 'db' }))).GroupId as string;
  sgAdmin = (await admin.send(new CreateSecurityGroupCommand({ VpcId: vpc, GroupName: 'admin', Description: 'admin' }))).GroupId as string;
  const launch = async (tags: Record<string, string>, ip: string) =>
    (
      await admin!.send(
        new RunInstancesCommand({
          ImageId: 'ami-00000000000000001',
          MinCount: 1,
          MaxCount: 1,
          InstanceType: 't3.small',
          // As EC2 makes a primary interface at launch: deleted with the instance, freeing its address.
          NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: subnet, Groups: [sgDb, sgAdmin], PrivateIpAddress: ip, DeleteOnTermination: true }],
          TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      )
    ).Instances?.[0] as Instance;
  db1 = await launch(NODE_TAGS, DB1_IP);
  db2 = await launch({ 'switchyard:node': 'dc2-db' }, DB2_IP);
  await launch({ role: 'twin' }, '10.0.1.30');
  await launch({ role: 'twin' }, '10.0.1.31');
  dataVolume = (await admin.send(new CreateVolumeCommand({ AvailabilityZone: 'eu-west-1a', Size: 20, VolumeType: 'gp3' }))).VolumeId as string;
  await admin.send(new AttachVolumeCommand({ VolumeId: dataVolume, InstanceId: db1.InstanceId, Device: '/dev/sdf' }));
  rootVolume = (await instance(db1.InstanceId as string)).BlockDeviceMappings?.find((m) => m.DeviceName === '/dev/sda1')?.Ebs?.VolumeId as string;

  const cluster = (sel1: Record<string, unknown>, sel2: Record<string, unknown>) => ({
    preferredPrimary: 'dc1',
    sites: { dc1: {}, dc2: {} },
    hosts: {
      h1: { site: 'dc1', address: '127.0.93.11', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
      h2: { site: 'dc2', address: '127.0.93.12', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
    },
    ssh: { user: 'postgres', privateKey: { env: 'UNUSED_KEY' } },
    postgres: {
      user: 'postgres',
      replication: { user: 'postgres' },
      nodes: {
        db1: { site: 'dc1', sshHost: 'h1', host: '127.0.93.11', dataDir: '/x', binDir: '/x', slot: 'db1', ec2: sel1 },
        db2: { site: 'dc2', sshHost: 'h2', host: '127.0.93.12', dataDir: '/x', binDir: '/x', slot: 'db2', ec2: sel2 },
      },
    },
    ec2: { region: 'eu-west-1', endpoint: proxy!.url, credentials: { accessKeyId: { env: KEY_ENV }, secretAccessKey: { env: SECRET_ENV } } },
    backup: { host: 'h2', root: '/x', binDir: '/x', kinds: ['ebs' as const], ebs: { copyTo: [{ region: COPY_REGION, keepLast: 1, maxAge: '7d' }] } },
  });
  top = topology({
    version: 1,
    clusters: {
      main: cluster({ tags: { 'switchyard:node': 'dc1-db' } }, { tags: { 'switchyard:node': 'dc2-db' } }),
      odd: cluster({ tags: { role: 'twin' } }, { tags: { Name: 'nobody' } }),
    },
  });
  const rt = new Runtime({ topology: () => top, timeouts: { awsConnectMs: 2000, awsRequestMs: 15_000 } });
  act = { ...ebsSnapshotActivities(rt), ...ebsCopyActivities(rt), ...ebsRestorePlanActivities(rt), ...ebsRestoreActivities(rt) };
});

after(async () => {
  admin?.destroy();
  adminCopy?.destroy();
  await proxy?.stop();
  await moto?.stop();
  removeDir(dir);
  delete process.env[KEY_ENV];
  delete process.env[SECRET_ENV];
});

const create = (backupId: string, cluster = 'main', node = 'db1') =>
  act.ebsSnapshotCreate({ cluster, backupId, node, workflowId: `wf-${backupId}`, requestedBy: 'alice' });

describe('ebsSnapshotCreate', () => {
  it("snapshots each volume of the node's instance once, together, with the expected tags and description", async (t) => {
    const r = await create('b1');
    t.diagnostic(r.detail);
    assert.equal(r.instanceId, db1.InstanceId);
    assert.equal(r.created.length, 2);
    assert.deepEqual(r.found, []);
    assert.equal(r.api.retries, 0);
    assert.match(r.detail, /^2 snapshots created together \(snap-\w+ at \/dev\/sda1, snap-\w+ at \/dev\/sdf\) of i-\w+ \(node "db1"\); EC2 API: \d+ calls$/);
    assert.ok(r.api.calls >= 4, `at least DescribeInstances, DescribeVolumes, DescribeSnapshots and CreateSnapshots: ${r.api.calls}`);

    const snaps = await snapshotsOf('b1');
    assert.deepEqual(
      snaps.map((s) => s.VolumeId),
      [rootVolume, dataVolume],
    );
    assert.deepEqual(snaps.map((s) => s.SnapshotId).sort(), [...r.created].sort());
    const meta = {
      node: 'db1',
      instanceId: db1.InstanceId,
      privateIp: DB1_IP,
      securityGroupIds: [sgDb, sgAdmin],
      instanceType: 't3.small',
      subnetId: subnet,
      availabilityZone: 'eu-west-1a',
      imageId: 'ami-00000000000000001',
      rootDeviceName: '/dev/sda1',
      tags: Object.fromEntries(Object.entries(NODE_TAGS).sort(([a], [b]) => a.localeCompare(b))),
    };
    for (const [s, device, del, type, iops] of [
      [snaps[0], '/dev/sda1', 'true', 'gp2', undefined],
      [snaps[1], '/dev/sdf', 'false', 'gp3', '3000'],
    ] as const) {
      const tags = tagsOf(s);
      // The JSON in "switchyard:restore", continued in ":2", ":3" … (256 characters per tag value).
      const parts = Object.keys(tags).filter((k) => k === EBS_TAGS.restore || k.startsWith(`${EBS_TAGS.restore}:`));
      const json = parts.map((_, i) => tags[i === 0 ? EBS_TAGS.restore : `${EBS_TAGS.restore}:${i + 1}`]).join('');
      const restore = JSON.parse(json) as Record<string, unknown>;
      assert.deepEqual(
        { ...restore, architecture: undefined, enaSupport: undefined, bootMode: undefined },
        { ...meta, architecture: undefined, enaSupport: undefined, bootMode: undefined },
      );
      const expected: Record<string, string> = {
        [EBS_TAGS.cluster]: 'main',
        [EBS_TAGS.backupId]: 'b1',
        [EBS_TAGS.node]: 'db1',
        [EBS_TAGS.workflowId]: 'wf-b1',
        [EBS_TAGS.createdBy]: 'alice',
        [EBS_TAGS.device]: device,
        [EBS_TAGS.deleteOnTermination]: del,
        [EBS_TAGS.volumeType]: type,
      };
      if (iops) expected[EBS_TAGS.iops] = iops;
      for (const k of parts) expected[k] = tags[k];
      assert.deepEqual(tags, expected);
      for (const v of Object.values(tags)) assert.ok(v.length <= 256, `tag value within EC2's 256 characters: ${v.length}`);
      assert.match(
        s.Description ?? '',
        new RegExp(`^switchyard backup b1 of db1 \\(${db1.InstanceId}, 2 volumes taken together\\) \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$`),
      );
    }
    assert.deepEqual(
      r.restore.devices.map((d) => [d.device, d.volumeId, d.sizeGiB, d.volumeType, d.deleteOnTermination, d.iops]),
      [
        ['/dev/sda1', rootVolume, 8, 'gp2', true, undefined],
        ['/dev/sdf', dataVolume, 20, 'gp3', false, 3000],
      ],
    );
  });

  it('a second call with the same backup id finds the snapshots instead of making more', async () => {
    const before = (await snapshotsOf('b1')).map((s) => s.SnapshotId).sort();
    const r = await create('b1');
    assert.deepEqual(r.created, []);
    assert.deepEqual([...r.found].sort(), before);
    assert.match(r.detail, /^2 snapshots found from an earlier attempt/);
    assert.deepEqual((await snapshotsOf('b1')).map((s) => s.SnapshotId).sort(), before);
  });

  it('throttling and 5xx answers are retried by the SDK, counted in api.retries and named in detail; one snapshot per volume', async (t) => {
    proxy!.resetCounts();
    proxy!.inject({ kind: 'throttle', action: 'DescribeInstances', count: 1 });
    proxy!.inject({ kind: 'internal', action: 'DescribeVolumes', count: 1 });
    proxy!.inject({ kind: 'unavailable', action: 'DescribeSnapshots', count: 1 });
    proxy!.inject({ kind: 'throttle-400', action: 'CreateSnapshots', count: 2 });
    const r = await create('b2');
    t.diagnostic(r.detail);
    assert.equal(proxy!.injected, 5);
    assert.equal(proxy!.pending, 0);
    assert.equal(r.api.retries, 5);
    assert.match(r.detail, /EC2 API: \d+ calls, 5 retries$/);
    assert.equal(r.created.length, 2);
    const snaps = await snapshotsOf('b2');
    assert.deepEqual(
      snaps.map((s) => s.VolumeId),
      [rootVolume, dataVolume],
    );
    assert.deepEqual(snaps.map((s) => s.SnapshotId).sort(), [...r.created].sort());
  });

  it('a CreateSnapshots whose answer was lost (EC2 made the set, the client saw a 500) leaves one snapshot per volume', async (t) => {
    proxy!.resetCounts();
    proxy!.inject({ kind: 'internal', action: 'CreateSnapshots', count: 1, when: 'after' });
    const r = await create('b3');
    t.diagnostic(r.detail);
    assert.equal(proxy!.counts('CreateSnapshots').forwarded, 2, 'EC2 saw two CreateSnapshots requests (one retried)');
    assert.equal(r.api.retries, 1);
    assert.match(r.detail, /removed snap-\w+, snap-\w+ \(failed, duplicate or of an incomplete set\)/);
    const snaps = await snapshotsOf('b3');
    assert.deepEqual(
      snaps.map((s) => s.VolumeId),
      [rootVolume, dataVolume],
    );
    assert.deepEqual(snaps.map((s) => s.SnapshotId).sort(), [...r.created].sort());
  });

  it("throttled beyond the SDK's attempts: an ordinary (retryable) error, and nothing made", async () => {
    proxy!.inject({ kind: 'throttle', action: 'DescribeInstances', count: 20 });
    try {
      const e = await rejection(create('b4'));
      assert.notEqual(e.nonRetryable, true);
      assert.equal(e.name, 'RequestLimitExceeded');
    } finally {
      proxy!.clear();
    }
    assert.deepEqual(await snapshotsOf('b4'), []);
  });

  it('a failed ("error") snapshot of the backup is replaced by a new one', async () => {
    const old = (await snapshotsOf('b3')).map((s) => s.SnapshotId as string);
    // The next DescribeSnapshots (the create's look for existing ones) reports both as failed.
    proxy!.rewrite({ action: 'DescribeSnapshots', count: 1, transform: (b) => b.replace(/<status>completed<\/status>/g, '<status>error</status>') });
    const r = await create('b3');
    assert.equal(proxy!.counts('DescribeSnapshots').rewritten, 1);
    assert.equal(r.created.length, 2);
    const now = (await snapshotsOf('b3')).map((s) => s.SnapshotId as string);
    assert.deepEqual(now.sort(), [...r.created].sort());
    for (const id of old) assert.ok(!now.includes(id), `${id} was deleted`);
  });

  it('a node whose selector matches two instances, or none, is refused without snapshotting', async () => {
    const two = await rejection(create('x1', 'odd', 'db1'));
    assert.equal(two.type, 'Ec2Ambiguous');
    assert.equal(two.nonRetryable, true);
    const none = await rejection(create('x1', 'odd', 'db2'));
    assert.equal(none.type, 'Ec2InstanceNotFound');
    assert.match(none.message, /no non-terminated EC2 instance matches Name=nobody for node "db2"/);
    const bad = await rejection(create('../x'));
    assert.equal(bad.type, 'ConfigError');
  });
});

describe('ebsSnapshotWait', () => {
  it('returns completed when every snapshot of the backup is completed', async () => {
    const r = await act.ebsSnapshotWait({ cluster: 'main', backupId: 'b1', timeoutSeconds: 60 });
    assert.equal(r.completed, true);
    assert.deepEqual(
      r.snapshots.map((s) => s.state),
      ['completed', 'completed'],
    );
    assert.match(r.detail, /^2 snapshots of backup b1 completed/);
  });

  it('still pending when the time is up: completed false, no throw', async () => {
    proxy!.rewrite({ action: 'DescribeSnapshots', count: 1000, transform: (b) => b.replace(/<status>completed<\/status>/g, '<status>pending</status>') });
    try {
      const r = await act.ebsSnapshotWait({ cluster: 'main', backupId: 'b1', timeoutSeconds: 3 });
      assert.equal(r.completed, false);
      assert.match(r.detail, /^0 of 2 snapshots of backup b1 completed when the 3 s wait ended/);
      assert.ok(r.api.calls >= 2, 'it looked more than once');
    } finally {
      proxy!.clear();
    }
  });

  it('a snapshot in state "error" is a non-retryable SnapshotFailed naming it', async () => {
    proxy!.rewrite({ action: 'DescribeSnapshots', count: 1, transform: (b) => b.replace(/<status>completed<\/status>/, '<status>error</status>') });
    const e = await rejection(act.ebsSnapshotWait({ cluster: 'main', backupId: 'b1', timeoutSeconds: 30 }));
    proxy!.clear();
    assert.equal(e.type, 'SnapshotFailed');
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, /EBS snapshot snap-\w+ of vol-\w+ \(\/dev\/sd[af]1?\) in backup b1 failed/);
  });

  it('an unknown backup id is BackupNotFound', async () => {
    const e = await rejection(act.ebsSnapshotWait({ cluster: 'main', backupId: 'nope', timeoutSeconds: 0 }));
    assert.equal(e.type, 'BackupNotFound');
  });
});

describe('ebsBackupsList and ebsSnapshotsDelete', () => {
  it("lists the cluster's snapshots grouped by backup id, newest first, with what a restore needs", async () => {
    const list = await act.ebsBackupsList({ cluster: 'main' });
    assert.deepEqual(list.map((e) => e.backupId).sort(), ['b1', 'b2', 'b3']);
    for (const e of list) {
      assert.deepEqual(
        e.snapshots.map((s) => [s.device, s.volumeId]),
        [
          ['/dev/sda1', rootVolume],
          ['/dev/sdf', dataVolume],
        ],
      );
      assert.equal(e.node, 'db1');
      assert.equal(e.restore?.privateIp, DB1_IP);
      assert.deepEqual(
        e.restore?.devices.map((d) => d.device),
        ['/dev/sda1', '/dev/sdf'],
      );
    }
    const times = list.map((e) => e.createdAt ?? '');
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    assert.deepEqual(await act.ebsBackupsList({ cluster: 'odd' }), []);
  });

  it("deletes exactly that backup's snapshots, and a second delete is fine", async () => {
    const b1 = (await snapshotsOf('b1')).map((s) => s.SnapshotId);
    const b3 = (await snapshotsOf('b3')).map((s) => s.SnapshotId);
    const gone = (await snapshotsOf('b2')).map((s) => s.SnapshotId as string);
    const r = await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'b2' });
    assert.deepEqual([...r.deleted].sort(), [...gone].sort());
    assert.deepEqual(await snapshotsOf('b2'), []);
    assert.deepEqual(
      (await snapshotsOf('b1')).map((s) => s.SnapshotId),
      b1,
    );
    assert.deepEqual(
      (await snapshotsOf('b3')).map((s) => s.SnapshotId),
      b3,
    );
    const again = await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'b2' });
    assert.deepEqual(again.deleted, []);
    assert.match(again.detail, /^no snapshot of backup b2 left to delete/);
  });
});

describe('snapshots taken together (CreateSnapshots)', () => {
  it('every volume of a multi-volume instance in one CreateSnapshots call, each tagged with its own device; a resumed call makes none', async () => {
    proxy!.resetCounts();
    const r = await create('m1');
    assert.equal(proxy!.counts('CreateSnapshots').forwarded, 1, 'one call for the instance');
    assert.equal(proxy!.counts('CreateSnapshot').forwarded, 0, 'no per-volume call');
    const snaps = await snapshotsOf('m1');
    assert.deepEqual(
      snaps.map((s) => [s.VolumeId, tagsOf(s)[EBS_TAGS.device], tagsOf(s)[EBS_TAGS.backupId]]),
      [
        [rootVolume, '/dev/sda1', 'm1'],
        [dataVolume, '/dev/sdf', 'm1'],
      ],
    );
    assert.deepEqual(snaps.map((s) => s.SnapshotId).sort(), [...r.created].sort());
    assert.equal(new Set(snaps.map((s) => s.Description)).size, 1, 'one description for the set');

    const again = await create('m1');
    assert.deepEqual(again.created, []);
    assert.deepEqual([...again.found].sort(), [...r.created].sort());
    assert.equal(proxy!.counts('CreateSnapshots').forwarded, 1, 'no second CreateSnapshots');
    assert.deepEqual((await snapshotsOf('m1')).map((s) => s.SnapshotId).sort(), [...r.created].sort());
  });

  it('interrupted between CreateSnapshots and the device tags: the resumed call finds the set and tags it, making no second one', async () => {
    proxy!.resetCounts();
    proxy!.inject({ kind: 'internal', action: 'CreateTags', count: 20 });
    try {
      const e = await rejection(create('m2'));
      assert.notEqual(e.nonRetryable, true);
    } finally {
      proxy!.clear();
    }
    const made = await snapshotsOf('m2');
    assert.equal(made.length, 2, 'the set was made');
    assert.deepEqual(
      made.map((s) => tagsOf(s)[EBS_TAGS.device]),
      [undefined, undefined],
      'without device tags yet',
    );
    const r = await create('m2');
    assert.deepEqual(r.created, []);
    assert.deepEqual([...r.found].sort(), made.map((s) => s.SnapshotId).sort());
    assert.equal(proxy!.counts('CreateSnapshots').forwarded, 1, 'one set in all');
    const now = await snapshotsOf('m2');
    assert.deepEqual(
      now.map((s) => [s.VolumeId, tagsOf(s)[EBS_TAGS.device], tagsOf(s)[EBS_TAGS.deleteOnTermination]]),
      [
        [rootVolume, '/dev/sda1', 'true'],
        [dataVolume, '/dev/sdf', 'false'],
      ],
    );
  });

  it('a set missing a volume is not one consistent backup: a new set is taken and the old one deleted', async () => {
    const old = await snapshotsOf('m2');
    await admin!.send(new DeleteSnapshotCommand({ SnapshotId: old[1].SnapshotId }));
    const r = await create('m2');
    assert.equal(r.created.length, 2);
    assert.match(r.detail, new RegExp(`removed ${old[0].SnapshotId} \\(failed, duplicate or of an incomplete set\\)`));
    assert.deepEqual((await snapshotsOf('m2')).map((s) => s.SnapshotId).sort(), [...r.created].sort());
    await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'm1' });
    await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'm2' });
  });
});

describe('copies in another region (backup.ebs.copyTo)', () => {
  /** Copy a fresh backup and wait for its copies. */
  const backupAndCopy = async (backupId: string) => {
    await create(backupId);
    const copy = await act.ebsSnapshotCopy({ cluster: 'main', backupId, region: COPY_REGION });
    const wait = await act.ebsCopyWait({ cluster: 'main', backupId, region: COPY_REGION, timeoutSeconds: 60 });
    return { copy, wait };
  };

  it('every snapshot of the backup has one copy in the copy region, tagged like it plus its source snapshot and region', async (t) => {
    const { copy, wait } = await backupAndCopy('c1');
    t.diagnostic(copy.detail);
    t.diagnostic(wait.detail);
    assert.equal(copy.region, COPY_REGION);
    assert.equal(copy.sourceRegion, 'eu-west-1');
    assert.equal(copy.created.length, 2);
    assert.match(
      copy.detail,
      new RegExp(
        `^2 copies started \\(snap-\\w+ → snap-\\w+ \\(/dev/sda1\\), snap-\\w+ → snap-\\w+ \\(/dev/sdf\\)\\) of backup c1 from eu-west-1 in ${COPY_REGION}; EC2 API`,
      ),
    );
    assert.equal(wait.completed, true, wait.detail);
    assert.match(wait.detail, new RegExp(`^2 snapshots of backup c1 in ${COPY_REGION} completed`));

    const sources = await snapshotsOf('c1');
    const copies = await snapshotsOf('c1', adminCopy);
    assert.equal(copies.length, 2);
    for (const src of sources) {
      const mine = copies.filter((c) => tagsOf(c)[EBS_TAGS.sourceSnapshot] === src.SnapshotId);
      assert.equal(mine.length, 1, `one copy of ${src.SnapshotId}`);
      assert.deepEqual(tagsOf(mine[0]), { ...tagsOf(src), [EBS_TAGS.sourceSnapshot]: src.SnapshotId, [EBS_TAGS.sourceRegion]: 'eu-west-1' });
      assert.equal(mine[0].State, 'completed');
      assert.equal(mine[0].Description, `switchyard copy of ${src.SnapshotId} (backup c1, ${tagsOf(src)[EBS_TAGS.device]}) from eu-west-1`);
    }
    // The copies are not in the source region, and the source region has no more than the backup's own snapshots.
    assert.deepEqual((await snapshotsOf('c1')).map((s) => s.SnapshotId).sort(), sources.map((s) => s.SnapshotId).sort());

    // The copy region's catalog reads the backup from the copies alone, restore metadata included.
    const [entry] = (await act.ebsBackupsList({ cluster: 'main', region: COPY_REGION })).filter((e) => e.backupId === 'c1');
    assert.equal(entry.node, 'db1');
    assert.equal(entry.restore?.privateIp, DB1_IP);
    assert.deepEqual(
      entry.restore?.devices.map((d) => d.device),
      ['/dev/sda1', '/dev/sdf'],
    );
  });

  it('a second copy call finds the copies instead of making more', async () => {
    const before = (await snapshotsOf('c1', adminCopy)).map((s) => s.SnapshotId).sort();
    proxy!.resetCounts();
    const r = await act.ebsSnapshotCopy({ cluster: 'main', backupId: 'c1', region: COPY_REGION });
    assert.deepEqual(r.created, []);
    assert.deepEqual([...r.found].sort(), before);
    assert.equal(proxy!.counts('CopySnapshot').forwarded, 0);
    assert.match(r.detail, /^2 copies found from an earlier attempt/);
    assert.deepEqual((await snapshotsOf('c1', adminCopy)).map((s) => s.SnapshotId).sort(), before);
  });

  it("retention in the copy region applies that region's own policy and removes only the expired copies", async () => {
    await backupAndCopy('c2');
    const policy = clusterLayout('main', top.clusters.main, top).backup?.ebs?.copyTo[0];
    assert.deepEqual(policy, { region: COPY_REGION, keepLast: 1, maxAgeSeconds: 7 * 86400 });
    const c1Copies = (await snapshotsOf('c1', adminCopy)).map((s) => s.SnapshotId as string);
    const c2Copies = (await snapshotsOf('c2', adminCopy)).map((s) => s.SnapshotId as string);
    const sourceBefore = [...(await snapshotsOf('c1')), ...(await snapshotsOf('c2'))].map((s) => s.SnapshotId).sort();
    // c1's copies read 30 days old in the copy region's listing (moto cannot backdate a snapshot).
    const old = new Date(Date.now() - 30 * 86400_000).toISOString();
    proxy!.rewrite({
      action: 'DescribeSnapshots',
      count: 1,
      transform: (b) =>
        c1Copies.reduce((body, id) => body.replace(new RegExp(`(<snapshotId>${id}</snapshotId>[\\s\\S]*?<startTime>)[^<]*(</startTime>)`), `$1${old}$2`), b),
    });
    const list = await act.ebsBackupsList({ cluster: 'main', region: COPY_REGION });
    assert.equal(proxy!.counts('DescribeSnapshots').rewritten, 1);
    const decisions = planRetention(catalog([], list), { keepLast: policy!.keepLast, maxAgeSeconds: policy!.maxAgeSeconds }, Date.now());
    assert.deepEqual(
      decisions.map((d) => [d.backupId, d.action]),
      [
        ['c2', 'keep'],
        ['c1', 'delete'],
      ],
    );
    for (const d of decisions.filter((x) => x.action === 'delete')) {
      const r = await act.ebsSnapshotsDelete({ cluster: 'main', backupId: d.backupId, region: COPY_REGION });
      assert.deepEqual([...r.deleted].sort(), [...c1Copies].sort());
      assert.match(r.detail, new RegExp(`^deleted 2 snapshots of backup c1 in ${COPY_REGION}`));
    }
    assert.deepEqual(await snapshotsOf('c1', adminCopy), [], "c1's copies are gone");
    assert.deepEqual((await snapshotsOf('c2', adminCopy)).map((s) => s.SnapshotId).sort(), [...c2Copies].sort(), "c2's copies stay");
    assert.deepEqual(
      [...(await snapshotsOf('c1')), ...(await snapshotsOf('c2'))].map((s) => s.SnapshotId).sort(),
      sourceBefore,
      'the source region is untouched',
    );
  });

  it('a restore in the copy region is refused, naming the subnet and groups it does not have; nothing is launched there', async () => {
    const plan = await rejection(act.ebsRestorePlan({ cluster: 'main', backupId: 'c2', region: COPY_REGION }));
    assert.equal(plan.type, 'BackupUnusable');
    assert.equal(plan.nonRetryable, true);
    assert.match(
      plan.message,
      new RegExp(
        `^backup c2 cannot be restored in ${COPY_REGION}: .* and ${COPY_REGION} has no subnet ${subnet}, no security group ${sgDb}, no security group ${sgAdmin}\\.`,
      ),
    );
    const launch = await rejection(
      act.ebsRestoreInstance({ cluster: 'main', backupId: 'c2', token: 'copy-restore', requestedBy: 'alice', region: COPY_REGION }),
    );
    assert.equal(launch.type, 'BackupUnusable');
    const there = (await adminCopy!.send(new DescribeInstancesCommand({}))).Reservations ?? [];
    assert.deepEqual(there, [], `no instance in ${COPY_REGION}`);
  });

  it("with backup.ebs.copyTo's network, a restore in the copy region launches there into that subnet, keeping the recorded IP it fits", async () => {
    const vpc = (await adminCopy!.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId;
    const net = (await adminCopy!.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.1.0/24', AvailabilityZone: `${COPY_REGION}a` }))).Subnet
      ?.SubnetId as string;
    const sg = (await adminCopy!.send(new CreateSecurityGroupCommand({ GroupName: 'db-copy', Description: 'db', VpcId: vpc }))).GroupId as string;
    const entry = top.clusters.main.backup!.ebs!.copyTo[0];
    entry.network = { subnetId: net, securityGroupIds: [sg] };
    try {
      const plan = await act.ebsRestorePlan({ cluster: 'main', backupId: 'c2', region: COPY_REGION });
      assert.match(
        plan.detail,
        new RegExp(`launches into ${net} \\(10\\.0\\.1\\.0/24\\) of ${COPY_REGION} with the recorded private IP ${DB1_IP.replace(/\./g, '\\.')}`),
      );
      assert.equal(plan.restore.subnetId, net);
      assert.deepEqual(plan.restore.securityGroupIds, [sg]);
      const r = await act.ebsRestoreInstance({ cluster: 'main', backupId: 'c2', token: 'copy-restore-net', requestedBy: 'alice', region: COPY_REGION });
      assert.equal(r.launched, true);
      const [inst] = ((await adminCopy!.send(new DescribeInstancesCommand({ InstanceIds: [r.instanceId] }))).Reservations ?? []).flatMap(
        (x) => x.Instances ?? [],
      );
      assert.equal(inst.SubnetId, net, 'launched into the mapped subnet of the copy region');
      assert.equal(inst.PrivateIpAddress, DB1_IP, 'with the recorded private IP (it lies in that subnet)');
      assert.deepEqual(groupsOf(inst), [sg]);
      assert.equal(tagsOf(inst)[EBS_TAGS.restoredFrom], 'c2');
      await adminCopy!.send(new TerminateInstancesCommand({ InstanceIds: [r.instanceId] }));

      // A subnet the recorded IP does not fit: EC2 picks an address, and the restore says so.
      const other = (await adminCopy!.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.9.0/24', AvailabilityZone: `${COPY_REGION}b` }))).Subnet
        ?.SubnetId as string;
      entry.network = { subnetId: other, securityGroupIds: [sg] };
      const plan2 = await act.ebsRestorePlan({ cluster: 'main', backupId: 'c2', region: COPY_REGION });
      assert.match(plan2.detail, /is not in that subnet, EC2 picks one/);
      assert.equal(plan2.restore.privateIp, null);
    } finally {
      delete entry.network;
    }
  });

  it('a region that is neither ec2.region nor in backup.ebs.copyTo is a ConfigError naming both', async () => {
    const e = await rejection(act.ebsBackupsList({ cluster: 'main', region: 'us-east-1' }));
    assert.equal(e.type, 'ConfigError');
    assert.match(e.message, /neither cluster "main"'s ec2\.region \(eu-west-1\) nor one of its backup\.ebs\.copyTo regions \(eu-central-1\)/);
    const own = await rejection(act.ebsSnapshotCopy({ cluster: 'main', backupId: 'c2', region: 'eu-west-1' }));
    assert.equal(own.type, 'ConfigError');
    await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'c1' });
    await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'c2' });
    await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'c2', region: COPY_REGION });
  });
});

describe('restore from snapshots', () => {
  const TOKEN = 'wf-restore-1/ebsRestoreInstance';

  it('the plan reports the backup and that the original instance still holds the private IP', async (t) => {
    const plan = await act.ebsRestorePlan({ cluster: 'main', backupId: 'b1' });
    t.diagnostic(plan.detail);
    assert.deepEqual(plan.ipHeldBy, { instanceId: db1.InstanceId, state: 'running', node: 'db1', restoredFrom: null });
    assert.equal(plan.restore.privateIp, DB1_IP);
    assert.equal(plan.snapshots.length, 2);
    assert.match(plan.detail, /10\.0\.1\.10 is held by i-\w+ \(node "db1", running\)/);
    const e = await rejection(act.ebsRestorePlan({ cluster: 'main', backupId: 'b2' }));
    assert.equal(e.type, 'BackupNotFound');
    assert.equal(e.nonRetryable, true);
  });

  it('refuses to launch while the original holds the address, and launches nothing', async () => {
    const e = await rejection(act.ebsRestoreInstance({ cluster: 'main', backupId: 'b1', token: TOKEN, requestedBy: 'alice' }));
    assert.equal(e.type, 'PrivateIpInUse');
    assert.equal(e.nonRetryable, true);
    assert.match(e.message, new RegExp(`held by ${db1.InstanceId} \\(node "db1", running\\)`));
    assert.deepEqual(
      (await liveNodeInstances()).map((i) => i.InstanceId),
      [db1.InstanceId],
    );
  });

  it('terminates the original (idempotently); the plan then finds the address free', async () => {
    const t = await act.ebsTerminateInstance({ cluster: 'main', instanceId: db1.InstanceId as string });
    assert.deepEqual([t.terminated, t.changed], [true, true]);
    assert.equal((await instance(db1.InstanceId as string)).State?.Name, 'terminated');
    const again = await act.ebsTerminateInstance({ cluster: 'main', instanceId: db1.InstanceId as string });
    assert.deepEqual([again.terminated, again.changed], [true, false]);
    const plan = await act.ebsRestorePlan({ cluster: 'main', backupId: 'b1' });
    assert.equal(plan.ipHeldBy, null);
    assert.equal(plan.ipInterface, null);
    assert.match(plan.detail, /10\.0\.1\.10 is free/);
  });

  it("launches an instance with the recorded address, groups, subnet, type, tags and the backup's volumes", async (t) => {
    const snaps = await snapshotsOf('b1');
    proxy!.resetCounts();
    proxy!.inject({ kind: 'throttle', action: 'RunInstances', count: 1 });
    const r = await act.ebsRestoreInstance({ cluster: 'main', backupId: 'b1', token: TOKEN, requestedBy: 'alice' });
    t.diagnostic(r.detail);
    assert.equal(r.launched, true);
    assert.equal(r.state, 'running');
    assert.equal(r.api.retries, 1);
    assert.match(r.detail, /1 retry$/);

    const i = await instance(r.instanceId);
    assert.notEqual(r.instanceId, db1.InstanceId);
    assert.equal(i.State?.Name, 'running');
    assert.equal(i.PrivateIpAddress, DB1_IP);
    assert.equal(i.SubnetId, subnet);
    assert.equal(i.InstanceType, 't3.small');
    assert.deepEqual(groupsOf(i), [sgDb, sgAdmin].sort());
    assert.deepEqual(tagsOf(i), { ...NODE_TAGS, [EBS_TAGS.restoredFrom]: 'b1', [EBS_TAGS.restoreToken]: TOKEN });
    // The node's selector finds the new instance, and only it.
    assert.deepEqual(
      (await liveNodeInstances()).map((x) => x.InstanceId),
      [r.instanceId],
    );
    const vols = (await admin!.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [r.instanceId] }] }))).Volumes ?? [];
    assert.deepEqual(
      vols.map((v) => [v.Attachments?.[0]?.Device, v.SnapshotId, v.Size]).sort(),
      snaps.map((s) => [tagsOf(s)[EBS_TAGS.device], s.SnapshotId, s.VolumeSize]).sort(),
    );
    const img = (await admin!.send(new DescribeImagesCommand({ ImageIds: [r.imageId] }))).Images?.[0];
    assert.equal(img?.Name, 'switchyard-main-b1');
  });

  it('the same token again returns the same instance and launches nothing', async () => {
    const first = (await liveNodeInstances()).map((x) => x.InstanceId);
    const r = await act.ebsRestoreInstance({ cluster: 'main', backupId: 'b1', token: TOKEN, requestedBy: 'alice' });
    assert.equal(r.launched, false);
    assert.deepEqual([r.instanceId], first);
    assert.match(r.detail, /^found i-\w+ launched from backup b1 by an earlier attempt with this token/);
    assert.deepEqual(
      (await liveNodeInstances()).map((x) => x.InstanceId),
      first,
    );
  });

  it('another restore (new token) is refused while the restored instance holds the address', async () => {
    const e = await rejection(act.ebsRestoreInstance({ cluster: 'main', backupId: 'b1', token: 'another', requestedBy: 'bob' }));
    assert.equal(e.type, 'PrivateIpInUse');
    assert.match(e.message, /node "db1", running, restored from backup b1/);
    const plan = await act.ebsRestorePlan({ cluster: 'main', backupId: 'b1' });
    assert.equal(plan.ipHeldBy?.restoredFrom, 'b1');
    assert.equal((await instance(db2.InstanceId as string)).State?.Name, 'running', 'the other node was never touched');
  });

  it('deleting the backup deregisters the image the restore registered', async () => {
    const r = await act.ebsSnapshotsDelete({ cluster: 'main', backupId: 'b1' });
    assert.equal(r.deleted.length, 2);
    assert.equal(r.deregisteredImages?.length, 1);
    assert.deepEqual(await snapshotsOf('b1'), []);
  });
});
