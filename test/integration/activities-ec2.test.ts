/**
 * The EC2 activities and the elastic-ip / private-ip traffic drivers against moto_server
 * (127.0.92.1), with instances, volumes and addresses made through the real AWS SDK. Where the
 * address points afterwards is checked with the test's own client, not the activities' read.
 */
import { loadTools } from '../../src/tools';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AllocateAddressCommand,
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  AttachVolumeCommand,
  CreateSecurityGroupCommand,
  CreateSubnetCommand,
  CreateVolumeCommand,
  CreateVpcCommand,
  DescribeAddressesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { createActivities, type Activities } from '../../src/activities';
import { canConnect, Daemon, freePort, rejection, removeDir, tempDir, topology, waitFor } from './activities-harness';

const MOTO_ADDR = '127.0.92.1';
const VIP = '10.0.1.100';
const KEY_ENV = 'SWITCHYARD_TEST_EC2_KEY_ID';
const SECRET_ENV = 'SWITCHYARD_TEST_EC2_SECRET';

let dir: string | undefined;
let moto: Daemon | undefined;
let admin: EC2Client | undefined;
let act: Activities;
let db1: Instance;
let db2: Instance;
let publicIp: string;
let allocationId: string;
let dataVolume: string;

const eniOf = (i: Instance) => i.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId as string;

async function addressesOn(eni: string): Promise<string[]> {
  const r = await admin!.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni] }));
  return (r.NetworkInterfaces?.[0]?.PrivateIpAddresses ?? []).map((p) => p.PrivateIpAddress ?? '').sort();
}

async function eipHolder(): Promise<string | undefined> {
  return (await admin!.send(new DescribeAddressesCommand({ PublicIps: [publicIp] }))).Addresses?.[0]?.InstanceId;
}

before(async () => {
  dir = tempDir('ec2');
  const port = await freePort(MOTO_ADDR);
  const deadPort = await freePort(MOTO_ADDR);
  moto = Daemon.start('moto', loadTools().motoServer, ['-H', MOTO_ADDR, '-p', String(port)], { env: { MOTO_EC2_LOAD_DEFAULT_AMIS: 'false' }, cwd: dir });
  await waitFor('moto_server to listen', async () => canConnect(MOTO_ADDR, port), 30_000).catch((err) => {
    throw new Error(`${err}\n${moto?.output}`);
  });
  process.env[KEY_ENV] = 'testing-key';
  process.env[SECRET_ENV] = 'testing-secret-value';
  const endpoint = `http://${MOTO_ADDR}:${port}`;
  admin = new EC2Client({ region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'admin', secretAccessKey: 'admin' } });

  const vpc = (await admin.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId;
  const subnet = (await admin.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.1.0/24', AvailabilityZone: 'eu-west-1a' }))).Subnet?.SubnetId;
  const sg = (await admin.send(new CreateSecurityGroupCommand({ VpcId: vpc, GroupName: 'db', Description: 'db' }))).GroupId as string;
  const launch = async (tags: Record<string, string>) =>
    (
      await admin!.send(
        new RunInstancesCommand({
          ImageId: 'ami-00000000000000001',
          MinCount: 1,
          MaxCount: 1,
          InstanceType: 't3.micro',
          SubnetId: subnet,
          SecurityGroupIds: [sg],
          TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      )
    ).Instances?.[0] as Instance;
  // A terminated instance carrying db1's tags: history, never "the" instance of db1.
  const old = await launch({ Name: 'dc1-db' });
  await admin.send(new TerminateInstancesCommand({ InstanceIds: [old.InstanceId as string] }));
  db1 = await launch({ Name: 'dc1-db', cluster: 'main' });
  db2 = await launch({ Name: 'dc2-db', cluster: 'main' });
  await launch({ role: 'twin' });
  await launch({ role: 'twin' });
  dataVolume = (await admin.send(new CreateVolumeCommand({ AvailabilityZone: 'eu-west-1a', Size: 20 }))).VolumeId as string;
  await admin.send(new AttachVolumeCommand({ VolumeId: dataVolume, InstanceId: db1.InstanceId, Device: '/dev/sdf' }));
  await admin.send(new CreateVolumeCommand({ AvailabilityZone: 'eu-west-1a', Size: 3 })); // unattached
  const eip = await admin.send(new AllocateAddressCommand({ Domain: 'vpc' }));
  publicIp = eip.PublicIp as string;
  allocationId = eip.AllocationId as string;
  await admin.send(new AssociateAddressCommand({ AllocationId: allocationId, InstanceId: db1.InstanceId }));
  await admin.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: eniOf(db1), PrivateIpAddresses: [VIP] }));

  const cluster = (ep: string, sel1: Record<string, unknown>, sel2: Record<string, unknown>) => ({
    preferredPrimary: 'dc1',
    sites: { dc1: {}, dc2: {} },
    hosts: {
      h1: { site: 'dc1', address: '127.0.92.11', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
      h2: { site: 'dc2', address: '127.0.92.12', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9hbnlvbmVrbm93c3RoaXNpc25vdGFyZWFsa2V5' },
    },
    ssh: { user: 'postgres', privateKey: { env: 'UNUSED_KEY' } },
    postgres: {
      user: 'postgres',
      replication: { user: 'postgres' },
      nodes: {
        db1: { site: 'dc1', sshHost: 'h1', host: '127.0.92.11', dataDir: '/x', binDir: '/x', slot: 'db1', ec2: sel1 },
        db2: { site: 'dc2', sshHost: 'h2', host: '127.0.92.12', dataDir: '/x', binDir: '/x', slot: 'db2', ec2: sel2 },
      },
    },
    ec2: { region: 'eu-west-1', endpoint: ep, credentials: { accessKeyId: { env: KEY_ENV }, secretAccessKey: { env: SECRET_ENV } } },
    traffic: [
      { kind: 'elastic-ip' as const, name: 'eip', publicIp },
      { kind: 'private-ip' as const, name: 'vip', address: VIP },
      { kind: 'elastic-ip' as const, name: 'ghost', publicIp: '198.51.100.7' },
    ],
  });
  const top = topology({
    version: 1,
    clusters: {
      main: cluster(endpoint, { tags: { Name: 'dc1-db', cluster: 'main' } }, { instanceId: db2.InstanceId }),
      odd: cluster(endpoint, { tags: { role: 'twin' } }, { tags: { Name: 'nobody' } }),
      down: cluster(`http://${MOTO_ADDR}:${deadPort}`, { tags: { Name: 'dc1-db' } }, { tags: { Name: 'dc2-db' } }),
    },
  });
  act = createActivities({ topology: () => top, timeouts: { awsConnectMs: 1000, awsRequestMs: 5000 } });
});

after(async () => {
  admin?.destroy();
  await moto?.stop();
  removeDir(dir);
  delete process.env[KEY_ENV];
  delete process.env[SECRET_ENV];
});

describe('ec2Instances', () => {
  it("finds each node's one live instance by tags or id, with addresses, network and volumes", async () => {
    const list = await act.ec2Instances({ cluster: 'main' });
    assert.deepEqual(
      list.map((i) => [i.node, i.site, i.instanceId, i.state]),
      [
        ['db1', 'dc1', db1.InstanceId, 'running'],
        ['db2', 'dc2', db2.InstanceId, 'running'],
      ],
    );
    const [one] = list;
    assert.equal(one.privateIp, db1.PrivateIpAddress);
    assert.equal(one.subnetId, db1.SubnetId);
    assert.equal(one.instanceType, 't3.micro');
    assert.deepEqual(
      one.securityGroupIds,
      db1.SecurityGroups?.map((g) => g.GroupId),
    );
    // moto gives every instance an 8 GiB root volume; ours is the 20 GiB data volume.
    assert.deepEqual(
      one.volumes.filter((v) => v.device === '/dev/sdf'),
      [{ volumeId: dataVolume, device: '/dev/sdf', sizeGiB: 20 }],
    );
    assert.ok(one.volumes.some((v) => v.device === '/dev/sda1'));
    assert.ok(!list[1].volumes.some((v) => v.volumeId === dataVolume));
  });

  it('reports several or no matches in detail instead of throwing', async () => {
    const [twin, none] = await act.ec2Instances({ cluster: 'odd' });
    assert.equal(twin.instanceId, null);
    assert.match(twin.detail, /^2 instances match role=twin for node "db1": i-/);
    assert.equal(none.instanceId, null);
    assert.match(none.detail, /no non-terminated instance matches Name=nobody for node "db2"/);
  });

  it('reports an unreachable EC2 endpoint in detail', async () => {
    const list = await act.ec2Instances({ cluster: 'down' });
    assert.equal(list.length, 2);
    for (const i of list) {
      assert.equal(i.instanceId, null);
      assert.match(i.detail, /DescribeInstances failed: .*ECONNREFUSED/);
    }
  });
});

describe('elastic-ip driver', () => {
  it('reads the holder, moves the address to the other site, and verifies the move', async () => {
    const holder = await act.ec2AddressHolder({ cluster: 'main', publicIp });
    assert.deepEqual([holder.ok, holder.instanceId, holder.node, holder.site, holder.allocationId], [true, db1.InstanceId, 'db1', 'dc1', allocationId]);

    const r0 = await act.trafficRead({ cluster: 'main', driver: 'eip' });
    assert.equal(r0.site, 'dc1', r0.detail);
    const r1 = await act.trafficMove({ cluster: 'main', driver: 'eip', site: 'dc2' });
    assert.deepEqual([r1.site, r1.changed], ['dc2', true]);
    assert.equal(await eipHolder(), db2.InstanceId);
    const r2 = await act.trafficMove({ cluster: 'main', driver: 'eip', site: 'dc2' });
    assert.deepEqual([r2.site, r2.changed], ['dc2', false]);
    assert.equal(await eipHolder(), db2.InstanceId);
    assert.equal((await act.ec2AddressHolder({ cluster: 'main', publicIp })).node, 'db2');

    await act.trafficMove({ cluster: 'main', driver: 'eip', site: 'dc1' });
    assert.equal(await eipHolder(), db1.InstanceId);
  });

  it('an address the account does not have is data for reads and non-retryable for moves', async () => {
    const h = await act.ec2AddressHolder({ cluster: 'main', publicIp: '198.51.100.7' });
    assert.deepEqual([h.ok, h.instanceId], [true, null]);
    assert.match(h.detail, /no Elastic IP 198\.51\.100\.7/);
    const r = await act.trafficRead({ cluster: 'main', driver: 'ghost' });
    assert.equal(r.site, null);
    const e = await rejection(act.trafficMove({ cluster: 'main', driver: 'ghost', site: 'dc2' }));
    assert.equal(e.type, 'Ec2AddressNotFound');
    assert.equal(e.nonRetryable, true);
  });

  it('cannot read through a dead endpoint: a read says so, a move throws a retryable error', async () => {
    const r = await act.trafficRead({ cluster: 'down', driver: 'eip' });
    assert.equal(r.site, null);
    assert.match(r.detail, /^cannot read: .*ECONNREFUSED/);
    const e = await rejection(act.trafficMove({ cluster: 'down', driver: 'eip', site: 'dc2' }));
    assert.notEqual(e.nonRetryable, true);
  });
});

describe('private-ip driver', () => {
  it("moves the secondary address to the other instance's primary interface and off the old one", async () => {
    const r0 = await act.trafficRead({ cluster: 'main', driver: 'vip' });
    assert.equal(r0.site, 'dc1', r0.detail);
    const r1 = await act.trafficMove({ cluster: 'main', driver: 'vip', site: 'dc2' });
    assert.deepEqual([r1.site, r1.changed], ['dc2', true]);
    assert.ok((await addressesOn(eniOf(db2))).includes(VIP));
    assert.ok(!(await addressesOn(eniOf(db1))).includes(VIP), 'the old interface no longer holds the address');
    const r2 = await act.trafficMove({ cluster: 'main', driver: 'vip', site: 'dc2' });
    assert.equal(r2.changed, false);

    const back = await act.trafficMove({ cluster: 'main', driver: 'vip', site: 'dc1' });
    assert.equal(back.site, 'dc1');
    assert.ok((await addressesOn(eniOf(db1))).includes(VIP));
    assert.ok(!(await addressesOn(eniOf(db2))).includes(VIP));
    // Primary addresses are untouched.
    assert.ok((await addressesOn(eniOf(db1))).includes(db1.PrivateIpAddress as string));
    assert.ok((await addressesOn(eniOf(db2))).includes(db2.PrivateIpAddress as string));
  });

  it('a read sees an address held by two interfaces as pointing nowhere', async () => {
    await admin!.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: eniOf(db2), PrivateIpAddresses: [VIP] }));
    const r = await act.trafficRead({ cluster: 'main', driver: 'vip' });
    assert.equal(r.site, null);
    assert.match(r.detail, /^2 interfaces hold 10\.0\.1\.100/);
    // A move repairs it: exactly one holder afterwards.
    const m = await act.trafficMove({ cluster: 'main', driver: 'vip', site: 'dc1' });
    assert.equal(m.site, 'dc1');
    assert.ok(!(await addressesOn(eniOf(db2))).includes(VIP));
  });
});

describe('names', () => {
  it('an unknown driver is a ConfigError that lists the drivers', async () => {
    const e = await rejection(act.trafficRead({ cluster: 'main', driver: 'nope' }));
    assert.equal(e.type, 'ConfigError');
    assert.match(e.message, /unknown traffic driver "nope" in cluster "main"; known: "eip", "vip", "ghost"/);
  });

  it('no secret value appears in any result', async () => {
    const all = JSON.stringify([await act.ec2Instances({ cluster: 'main' }), await act.trafficRead({ cluster: 'main', driver: 'eip' })]);
    assert.ok(!all.includes('testing-secret-value'));
  });
});
