/**
 * The pure parts of the EBS backup activities: restore metadata in and out of snapshot tags (EC2's
 * 256-character tag values and 50 tags per resource), grouping snapshots into backups, and the
 * texts an operator reads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apiText } from '../../src/activities/backup/ebs-api';
import { ipInCidr } from '../../src/activities/backup/ebs-restore-plan';
import {
  backupTags,
  clientToken,
  clip,
  COPY_TAG_COUNT,
  copyDescription,
  copyTags,
  deviceTags,
  groupBackups,
  metadataFromSnapshots,
  restoreFromTags,
  restoredInstanceTags,
  restorePartKey,
  restoreTags,
  setDescription,
  snapshotMapping,
  snapshotTags,
  TAG_VALUE_MAX,
} from '../../src/activities/backup/ebs-tags';
import { EBS_TAGS, type EbsRestoreMetadata, type EbsSnapshotInfo } from '../../src/contract/backup';

const meta = (tags: Record<string, string> = { Name: 'dc1-db', 'switchyard:node': 'dc1-db' }): EbsRestoreMetadata => ({
  node: 'db1',
  instanceId: 'i-0123456789abcdef0',
  privateIp: '10.0.1.10',
  securityGroupIds: ['sg-1', 'sg-2'],
  instanceType: 'r6g.large',
  subnetId: 'subnet-1',
  availabilityZone: 'eu-west-1a',
  imageId: 'ami-1',
  rootDeviceName: '/dev/xvda',
  tags,
  devices: [
    { device: '/dev/xvda', volumeId: 'vol-root', sizeGiB: 8, volumeType: 'gp3', deleteOnTermination: true },
    { device: '/dev/xvdf', volumeId: 'vol-data', sizeGiB: 100, volumeType: 'io2', deleteOnTermination: false, iops: 6000 },
  ],
  architecture: 'arm64',
  enaSupport: true,
  bootMode: 'uefi',
});

function snap(
  id: string,
  backupId: string,
  device: string,
  volumeId: string,
  startTime: string,
  extraTags: Record<string, string>,
  state = 'completed',
): EbsSnapshotInfo {
  return {
    snapshotId: id,
    volumeId,
    device,
    sizeGiB: 8,
    state,
    progress: '100%',
    startTime,
    description: null,
    tags: { [EBS_TAGS.cluster]: 'main', [EBS_TAGS.backupId]: backupId, [EBS_TAGS.node]: 'db1', [EBS_TAGS.device]: device, ...extraTags },
  };
}

describe('restore metadata in tags', () => {
  it('is JSON without the devices, cut into full 256-character parts, and comes back whole', () => {
    const tags = restoreTags(meta());
    const parts = Object.values(tags);
    assert.deepEqual(
      Object.keys(tags),
      parts.map((_, i) => restorePartKey(i)),
    );
    assert.equal(Object.keys(tags)[0], EBS_TAGS.restore);
    for (const p of parts.slice(0, -1)) assert.equal(p.length, TAG_VALUE_MAX);
    const { devices: _devices, ...core } = meta();
    assert.deepEqual(JSON.parse(parts.join('')), core);
    assert.deepEqual(restoreFromTags(tags), core);
  });

  it('continues in :2, :3 … when longer than a tag value, split on characters, and reads back whole', () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 12; i++) many[`owner-${i}`] = `équipe données ${'é'.repeat(30)} ${i} 🐘`;
    const tags = restoreTags(meta(many));
    const keys = Object.keys(tags);
    assert.ok(keys.length > 2);
    assert.deepEqual(
      keys,
      keys.map((_, i) => restorePartKey(i)),
    );
    assert.equal(restorePartKey(1), 'switchyard:restore:2');
    for (const v of Object.values(tags)) assert.ok(Array.from(v).length <= TAG_VALUE_MAX);
    assert.deepEqual(restoreFromTags(tags)?.tags, many);
  });

  it('absent or damaged metadata reads as null', () => {
    assert.equal(restoreFromTags({}), null);
    assert.equal(restoreFromTags({ [EBS_TAGS.restore]: '{"node":' }), null);
    assert.equal(restoreFromTags({ [EBS_TAGS.restore]: '{"x":1}' }), null);
  });

  it('a snapshot carries every EBS tag; too many tags is a non-retryable RestoreMetadataTooLarge', () => {
    const m = meta();
    const tags = snapshotTags({ cluster: 'main', backupId: 'b1', node: 'db1', workflowId: 'wf', createdBy: 'alice', device: m.devices[1], meta: m });
    assert.deepEqual(tags, {
      [EBS_TAGS.cluster]: 'main',
      [EBS_TAGS.backupId]: 'b1',
      [EBS_TAGS.node]: 'db1',
      [EBS_TAGS.workflowId]: 'wf',
      [EBS_TAGS.createdBy]: 'alice',
      [EBS_TAGS.device]: '/dev/xvdf',
      [EBS_TAGS.deleteOnTermination]: 'false',
      [EBS_TAGS.volumeType]: 'io2',
      [EBS_TAGS.iops]: '6000',
      ...restoreTags(m),
    });
    const huge: Record<string, string> = {};
    for (let i = 0; i < 50; i++) huge[`k${i}`.padEnd(120, 'k')] = 'v'.repeat(250);
    assert.throws(
      () => snapshotTags({ cluster: 'main', backupId: 'b1', node: 'db1', workflowId: 'wf', createdBy: 'alice', device: m.devices[0], meta: meta(huge) }),
      (e: Error & { type?: string; nonRetryable?: boolean }) =>
        e.type === 'RestoreMetadataTooLarge' && e.nonRetryable === true && /more than EC2's 50/.test(e.message),
    );
  });

  it("the backup's metadata is rebuilt from snapshot tags alone, devices from each snapshot, failed ones left out", () => {
    const m = meta();
    const rt = restoreTags(m);
    const snaps = [
      snap('snap-b', 'b1', '/dev/xvdf', 'vol-data', '2024-01-01T00:00:01.000Z', {
        ...rt,
        [EBS_TAGS.deleteOnTermination]: 'false',
        [EBS_TAGS.volumeType]: 'io2',
        [EBS_TAGS.iops]: '6000',
      }),
      snap('snap-a', 'b1', '/dev/xvda', 'vol-root', '2024-01-01T00:00:00.000Z', {
        ...rt,
        [EBS_TAGS.deleteOnTermination]: 'true',
        [EBS_TAGS.volumeType]: 'gp3',
      }),
      snap('snap-x', 'b1', '/dev/xvdg', 'vol-x', '2024-01-01T00:00:00.000Z', rt, 'error'),
    ];
    snaps[0].sizeGiB = 100;
    assert.deepEqual(metadataFromSnapshots(snaps), m);
    assert.equal(metadataFromSnapshots([snap('s', 'b1', '/dev/xvda', 'v', '2024-01-01T00:00:00.000Z', {})]), null);
  });
});

describe('tags of snapshots taken together, and of their copies', () => {
  const m = meta();
  const input = { cluster: 'main', backupId: 'b1', node: 'db1', workflowId: 'wf', createdBy: 'alice', meta: m };

  it('one set of backup tags for the whole CreateSnapshots call, device tags per snapshot: together every EBS tag', () => {
    const common = backupTags(input);
    assert.deepEqual(
      Object.keys(common).sort(),
      [EBS_TAGS.backupId, EBS_TAGS.cluster, EBS_TAGS.createdBy, EBS_TAGS.node, ...Object.keys(restoreTags(m)), EBS_TAGS.workflowId].sort(),
    );
    assert.equal(
      Object.keys(common).some((k) => k === EBS_TAGS.device || k === EBS_TAGS.volumeType),
      false,
      'nothing of one volume in the shared tags',
    );
    assert.deepEqual(deviceTags(m.devices[1]), {
      [EBS_TAGS.device]: '/dev/xvdf',
      [EBS_TAGS.deleteOnTermination]: 'false',
      [EBS_TAGS.volumeType]: 'io2',
      [EBS_TAGS.iops]: '6000',
    });
    for (const device of m.devices) assert.deepEqual(snapshotTags({ ...input, device }), { ...common, ...deviceTags(device) });
  });

  it('leaves room for the copy tags: a snapshot whose copy would exceed 50 tags is refused when it is made', () => {
    // 5 backup tags + 3 device tags + the restore JSON: instance tags sized so that exactly 49 or 48 tags result.
    const sized = (total: number) => {
      for (let n = 1; n < 60; n++) {
        const tags: Record<string, string> = {};
        for (let i = 0; i < n; i++) tags[`k${i}`.padEnd(100, 'k')] = 'v'.repeat(150);
        const mm = meta(tags);
        const count = Object.keys({ ...backupTags({ ...input, meta: mm }), ...deviceTags(mm.devices[0]) }).length;
        if (count === total) return mm;
      }
      throw new Error(`no instance tags give ${total} snapshot tags`);
    };
    const at48 = sized(48);
    assert.equal(Object.keys(snapshotTags({ ...input, meta: at48, device: at48.devices[0] })).length + COPY_TAG_COUNT, 50);
    const at49 = sized(49);
    assert.throws(
      () => snapshotTags({ ...input, meta: at49, device: at49.devices[0] }),
      (e: Error & { type?: string }) =>
        e.type === 'RestoreMetadataTooLarge' && /needs 49 tags on each snapshot \(and 2 more on a copy in another region\)/.test(e.message),
    );
  });

  it("a copy carries its source's tags (not EC2's own), the source snapshot and the source region", () => {
    const src = snap('snap-src', 'b1', '/dev/xvdf', 'vol-data', '2024-01-01T00:00:00.000Z', { ...restoreTags(m), 'aws:backup:source': 'x' });
    const tags = copyTags(src, 'eu-west-1');
    const { ['aws:backup:source']: _aws, ...own } = src.tags;
    assert.deepEqual(tags, { ...own, [EBS_TAGS.sourceSnapshot]: 'snap-src', [EBS_TAGS.sourceRegion]: 'eu-west-1' });
    assert.equal(copyDescription(src, 'b1', 'eu-west-1'), 'switchyard copy of snap-src (backup b1, /dev/xvdf) from eu-west-1');
    // The copy region reads a backup from copies like the original: same id, node, devices and restore metadata.
    const copies = [
      {
        ...src,
        snapshotId: 'snap-c1',
        tags: { ...tags, [EBS_TAGS.deleteOnTermination]: 'false', [EBS_TAGS.volumeType]: 'io2', [EBS_TAGS.iops]: '6000' },
        sizeGiB: 100,
      },
      {
        ...snap('snap-c0', 'b1', '/dev/xvda', 'vol-root', '2024-01-01T00:00:00.000Z', restoreTags(m)),
        tags: {
          ...copyTags(snap('snap-src0', 'b1', '/dev/xvda', 'vol-root', '2024-01-01T00:00:00.000Z', restoreTags(m)), 'eu-west-1'),
          [EBS_TAGS.deleteOnTermination]: 'true',
          [EBS_TAGS.volumeType]: 'gp3',
        },
      },
    ];
    const [entry] = groupBackups(copies);
    assert.equal(entry.backupId, 'b1');
    assert.deepEqual(entry.restore, m);
  });
});

describe('snapshotMapping', () => {
  it('maps a snapshot at its device as the volume was: type, IOPS and throughput only where the type has them', () => {
    assert.deepEqual(
      snapshotMapping('snap-1', { device: '/dev/xvdf', volumeId: 'v', sizeGiB: 1, volumeType: 'gp3', deleteOnTermination: false, iops: 4000, throughput: 250 }),
      {
        DeviceName: '/dev/xvdf',
        Ebs: { SnapshotId: 'snap-1', DeleteOnTermination: false, VolumeType: 'gp3', Iops: 4000, Throughput: 250 },
      },
    );
    assert.deepEqual(snapshotMapping('snap-2', { device: '/dev/xvda', volumeId: 'v', sizeGiB: 1, volumeType: 'gp2', deleteOnTermination: true, iops: 100 }), {
      DeviceName: '/dev/xvda',
      Ebs: { SnapshotId: 'snap-2', DeleteOnTermination: true, VolumeType: 'gp2' },
    });
    assert.deepEqual(snapshotMapping('snap-3', { device: '/dev/sdg', volumeId: 'v', sizeGiB: 1, volumeType: null, deleteOnTermination: true }), {
      DeviceName: '/dev/sdg',
      Ebs: { SnapshotId: 'snap-3', DeleteOnTermination: true },
    });
  });
});

describe('groupBackups', () => {
  it('groups by backup id, devices in order, newest backup first, untagged ones ignored', () => {
    const list = groupBackups([
      snap('s1', 'old', '/dev/sdf', 'v2', '2024-01-01T00:00:05.000Z', {}),
      snap('s2', 'new', '/dev/sda1', 'v1', '2024-02-01T00:00:00.000Z', {}),
      snap('s3', 'old', '/dev/sda1', 'v1', '2024-01-01T00:00:03.000Z', {}),
      { ...snap('s4', 'x', '/dev/sda1', 'v1', '2024-03-01T00:00:00.000Z', {}), tags: {} },
    ]);
    assert.deepEqual(
      list.map((e) => [e.backupId, e.createdAt, e.node, e.snapshots.map((s) => s.snapshotId)]),
      [
        ['new', '2024-02-01T00:00:00.000Z', 'db1', ['s2']],
        ['old', '2024-01-01T00:00:03.000Z', 'db1', ['s3', 's1']],
      ],
    );
    assert.equal(list[0].restore, null);
  });
});

describe('texts and tokens', () => {
  it('names the API use, retries only when there were any', () => {
    assert.equal(apiText({ calls: 5, retries: 3 }), 'EC2 API: 5 calls, 3 retries');
    assert.equal(apiText({ calls: 1, retries: 1 }), 'EC2 API: 1 call, 1 retry');
    assert.equal(apiText({ calls: 4, retries: 0 }), 'EC2 API: 4 calls');
  });

  it('describes a set of snapshots taken together with backup, node, instance, volume count and time', () => {
    assert.equal(
      setDescription('b1', 'db1', 'i-1', 2, new Date('2024-05-06T07:08:09.010Z')),
      'switchyard backup b1 of db1 (i-1, 2 volumes taken together) 2024-05-06T07:08:09.010Z',
    );
    assert.equal(Array.from(setDescription('b'.repeat(128), 'n'.repeat(200), 'i-1', 2, new Date())).length, 255);
  });

  it('clips on characters, never inside one', () => {
    assert.equal(clip('🐘🐘🐘', 2), '🐘🐘');
    assert.equal(clip('abc', 5), 'abc');
  });

  it('uses the token as ClientToken when EC2 accepts it, else its SHA-256', () => {
    assert.equal(clientToken('wf-1/restore'), 'wf-1/restore');
    const long = clientToken('x'.repeat(65));
    assert.match(long, /^[0-9a-f]{64}$/);
    assert.equal(clientToken('x'.repeat(65)), long);
    assert.match(clientToken('with space'), /^[0-9a-f]{64}$/);
  });

  it("a restored instance gets the original's tags (not EC2's own), its origin and the token", () => {
    assert.deepEqual(restoredInstanceTags(meta({ Name: 'dc1-db', 'aws:cloudformation:stack-name': 's', [EBS_TAGS.restoredFrom]: 'b0' }), 'b1', 'tok'), {
      Name: 'dc1-db',
      [EBS_TAGS.restoredFrom]: 'b1',
      [EBS_TAGS.restoreToken]: 'tok',
    });
  });
});

describe('restoring in a copy region: does the recorded private IP fit the mapped subnet?', () => {
  it('inside the block, outside it, and malformed input (never "fits")', () => {
    assert.equal(ipInCidr('10.0.1.10', '10.0.1.0/24'), true);
    assert.equal(ipInCidr('10.0.2.10', '10.0.1.0/24'), false);
    assert.equal(ipInCidr('10.1.200.7', '10.0.0.0/15'), true);
    assert.equal(ipInCidr('10.2.0.1', '10.0.0.0/15'), false);
    assert.equal(ipInCidr('10.0.1.10', '0.0.0.0/0'), true);
    assert.equal(ipInCidr('not-an-ip', '10.0.1.0/24'), false);
    assert.equal(ipInCidr('10.0.1.10', '10.0.1.0/33'), false);
  });
});
