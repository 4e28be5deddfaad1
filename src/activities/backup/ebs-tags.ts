/**
 * The pure part of the EBS backups: what a backup's snapshot tags say (cluster, backup id, device,
 * and the restore metadata as JSON spread over tag values), reading them back into backups, the
 * names, tokens and tags of what a restore makes, and the texts an operator reads.
 */
import { createHash } from 'node:crypto';
import type { BlockDeviceMapping, Instance, Snapshot, Tag, Volume } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { EBS_TAGS, type EbsBackupEntry, type EbsDevice, type EbsRestoreMetadata, type EbsSnapshotInfo } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { primaryInterface } from '../ec2';

/** EC2 limits: characters of a tag value, tags per resource, characters of a snapshot (or image) description. */
export const TAG_VALUE_MAX = 256;
export const TAGS_PER_RESOURCE_MAX = 50;
export const DESCRIPTION_MAX = 255;

export function tagRecord(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

export function tagList(rec: Record<string, string>): Tag[] {
  return Object.entries(rec).map(([Key, Value]) => ({ Key, Value }));
}

/** Cut to at most `max` characters (code points), never splitting one. */
export function clip(text: string, max = TAG_VALUE_MAX): string {
  const cps = Array.from(text);
  return cps.length <= max ? text : cps.slice(0, max).join('');
}

/** The one description of a set of snapshots taken together (CreateSnapshots gives every snapshot the same). */
export function setDescription(backupId: string, node: string, instanceId: string, devices: number, at: Date): string {
  return clip(
    `switchyard backup ${backupId} of ${node} (${instanceId}, ${devices} volume${devices === 1 ? '' : 's'} taken together) ${at.toISOString()}`,
    DESCRIPTION_MAX,
  );
}

/** The name of the image a restore registers from a backup's snapshots. */
export function restoreImageName(cluster: string, backupId: string): string {
  return `switchyard-${cluster}-${backupId}`;
}

/** RunInstances' ClientToken (at most 64 printable ASCII characters): the token itself, or its SHA-256. */
export function clientToken(token: string): string {
  return /^[\x21-\x7e]{1,64}$/.test(token) ? token : createHash('sha256').update(token).digest('hex');
}

/** Tag keys holding the restore JSON: "switchyard:restore", then "switchyard:restore:2", ":3" … */
export function restorePartKey(index: number): string {
  return index === 0 ? EBS_TAGS.restore : `${EBS_TAGS.restore}:${index + 1}`;
}

/** The metadata without devices, keys in a fixed order (the same JSON on every snapshot). */
function restoreCore(meta: EbsRestoreMetadata): Omit<EbsRestoreMetadata, 'devices'> {
  const core: Omit<EbsRestoreMetadata, 'devices'> = {
    node: meta.node,
    instanceId: meta.instanceId,
    privateIp: meta.privateIp,
    securityGroupIds: meta.securityGroupIds,
    instanceType: meta.instanceType,
    subnetId: meta.subnetId,
    availabilityZone: meta.availabilityZone,
    imageId: meta.imageId,
    rootDeviceName: meta.rootDeviceName,
    tags: Object.fromEntries(Object.entries(meta.tags).sort(([a], [b]) => a.localeCompare(b))),
  };
  if (meta.architecture !== undefined) core.architecture = meta.architecture;
  if (meta.enaSupport !== undefined) core.enaSupport = meta.enaSupport;
  if (meta.bootMode !== undefined) core.bootMode = meta.bootMode;
  return core;
}

/**
 * The tags that carry EbsRestoreMetadata (without devices): its JSON in "switchyard:restore",
 * continued in ":2", ":3" … when it is longer than a tag value may be.
 */
export function restoreTags(meta: EbsRestoreMetadata): Record<string, string> {
  const cps = Array.from(JSON.stringify(restoreCore(meta)));
  const out: Record<string, string> = {};
  for (let i = 0; i * TAG_VALUE_MAX < cps.length; i++) out[restorePartKey(i)] = cps.slice(i * TAG_VALUE_MAX, (i + 1) * TAG_VALUE_MAX).join('');
  return out;
}

/** Rebuild the metadata (without devices) from a snapshot's tags; null when absent or unreadable. */
export function restoreFromTags(tags: Record<string, string>): Omit<EbsRestoreMetadata, 'devices'> | null {
  let json = '';
  for (let i = 0; tags[restorePartKey(i)] !== undefined; i++) json += tags[restorePartKey(i)];
  if (!json) return null;
  try {
    const v = JSON.parse(json) as Omit<EbsRestoreMetadata, 'devices'>;
    if (!v || typeof v !== 'object' || typeof v.node !== 'string' || !Array.isArray(v.securityGroupIds) || typeof v.tags !== 'object') return null;
    return v;
  } catch {
    return null;
  }
}

export interface SnapshotTagInput {
  cluster: string;
  backupId: string;
  node: string;
  workflowId: string;
  createdBy: string;
  device: EbsDevice;
  meta: EbsRestoreMetadata;
}

/** The tags a copy in another region carries besides its source's: EBS_TAGS.sourceSnapshot and EBS_TAGS.sourceRegion. */
export const COPY_TAG_COUNT = 2;

/** The tags of one snapshot that say which volume it is of (set per snapshot: CreateSnapshots tags a whole set alike). */
export function deviceTags(d: EbsDevice): Record<string, string> {
  return {
    [EBS_TAGS.device]: clip(d.device),
    [EBS_TAGS.deleteOnTermination]: String(d.deleteOnTermination),
    ...(d.volumeType ? { [EBS_TAGS.volumeType]: clip(d.volumeType) } : {}),
    ...(typeof d.iops === 'number' ? { [EBS_TAGS.iops]: String(d.iops) } : {}),
    ...(typeof d.throughput === 'number' ? { [EBS_TAGS.throughput]: String(d.throughput) } : {}),
  };
}

/** The tags every snapshot of a backup carries alike: cluster, backup id, node, workflow, creator, restore metadata. */
export function backupTags(t: Omit<SnapshotTagInput, 'device'>): Record<string, string> {
  return {
    [EBS_TAGS.cluster]: clip(t.cluster),
    [EBS_TAGS.backupId]: clip(t.backupId),
    [EBS_TAGS.node]: clip(t.node),
    [EBS_TAGS.workflowId]: clip(t.workflowId),
    [EBS_TAGS.createdBy]: clip(t.createdBy),
    ...restoreTags(t.meta),
  };
}

/**
 * Every tag of one snapshot of a backup. Throws RestoreMetadataTooLarge when they, with the
 * COPY_TAG_COUNT more a copy in another region adds, exceed EC2's 50 per resource.
 */
export function snapshotTags(t: SnapshotTagInput): Record<string, string> {
  const tags: Record<string, string> = { ...backupTags(t), ...deviceTags(t.device) };
  const n = Object.keys(tags).length;
  if (n + COPY_TAG_COUNT > TAGS_PER_RESOURCE_MAX) {
    throw ApplicationFailure.nonRetryable(
      `the restore metadata of instance ${t.meta.instanceId} (node "${t.node}") needs ${n} tags on each snapshot (and ${COPY_TAG_COUNT} more on a copy in ` +
        `another region), more than EC2's ${TAGS_PER_RESOURCE_MAX}: its ${Object.keys(t.meta.tags).length} tags are too long to record; ` +
        `shorten or remove some of the instance's tags`,
      Errors.RestoreMetadataTooLarge,
    );
  }
  return tags;
}

/** A copy's tags: its source's (EC2's own "aws:" ones left out), plus the source snapshot and region. */
export function copyTags(source: EbsSnapshotInfo, sourceRegion: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(source.tags)) if (!k.startsWith('aws:')) tags[k] = v;
  tags[EBS_TAGS.sourceSnapshot] = source.snapshotId;
  tags[EBS_TAGS.sourceRegion] = sourceRegion;
  return tags;
}

export function copyDescription(source: EbsSnapshotInfo, backupId: string, sourceRegion: string): string {
  return clip(`switchyard copy of ${source.snapshotId} (backup ${backupId}, ${source.device ?? source.volumeId}) from ${sourceRegion}`, DESCRIPTION_MAX);
}

export function snapshotInfo(s: Snapshot): EbsSnapshotInfo {
  const tags = tagRecord(s.Tags);
  return {
    snapshotId: s.SnapshotId ?? '',
    volumeId: s.VolumeId ?? '',
    device: tags[EBS_TAGS.device] ?? null,
    sizeGiB: s.VolumeSize ?? null,
    state: s.State ?? 'unknown',
    progress: s.Progress ?? null,
    startTime: s.StartTime ? new Date(s.StartTime).toISOString() : null,
    description: s.Description ?? null,
    tags,
  };
}

/** A snapshot's device as recorded in its tags. */
export function deviceOf(s: EbsSnapshotInfo): EbsDevice | null {
  const device = s.tags[EBS_TAGS.device];
  if (!device) return null;
  const num = (key: string) => (s.tags[key] !== undefined && Number.isFinite(Number(s.tags[key])) ? Number(s.tags[key]) : undefined);
  const iops = num(EBS_TAGS.iops);
  const throughput = num(EBS_TAGS.throughput);
  return {
    device,
    volumeId: s.volumeId,
    sizeGiB: s.sizeGiB,
    volumeType: s.tags[EBS_TAGS.volumeType] ?? null,
    deleteOnTermination: s.tags[EBS_TAGS.deleteOnTermination] === 'true',
    ...(iops !== undefined ? { iops } : {}),
    ...(throughput !== undefined ? { throughput } : {}),
  };
}

/** Volume types whose IOPS (and, for gp3, throughput) are chosen, so a restore must ask for them again. */
const PROVISIONED_IOPS = new Set(['io1', 'io2', 'gp3']);

/** The image's (or launch's) mapping of one snapshot at its recorded device, as the volume was. */
export function snapshotMapping(snapshotId: string, d: EbsDevice): BlockDeviceMapping {
  const ebs: NonNullable<BlockDeviceMapping['Ebs']> = { SnapshotId: snapshotId, DeleteOnTermination: d.deleteOnTermination };
  if (d.volumeType) ebs.VolumeType = d.volumeType as NonNullable<typeof ebs.VolumeType>;
  if (d.volumeType && PROVISIONED_IOPS.has(d.volumeType) && typeof d.iops === 'number') ebs.Iops = d.iops;
  if (d.volumeType === 'gp3' && typeof d.throughput === 'number') ebs.Throughput = d.throughput;
  return { DeviceName: d.device, Ebs: ebs };
}

export const byDevice = (a: { device: string | null }, b: { device: string | null }) => (a.device ?? '').localeCompare(b.device ?? '');

/** The backup's EbsRestoreMetadata, from its snapshots' tags alone (devices from each snapshot); null when none carries it. */
export function metadataFromSnapshots(snaps: EbsSnapshotInfo[]): EbsRestoreMetadata | null {
  let core: Omit<EbsRestoreMetadata, 'devices'> | null = null;
  for (const s of snaps) {
    core = restoreFromTags(s.tags);
    if (core) break;
  }
  if (!core) return null;
  const devices = snaps
    .filter((s) => s.state !== 'error')
    .map(deviceOf)
    .filter((d): d is EbsDevice => d !== null)
    .sort(byDevice);
  return { ...core, devices };
}

/** Snapshots grouped by backup id, newest backup first (by earliest start time, then id). */
export function groupBackups(snaps: EbsSnapshotInfo[]): EbsBackupEntry[] {
  const groups = new Map<string, EbsSnapshotInfo[]>();
  for (const s of snaps) {
    const id = s.tags[EBS_TAGS.backupId];
    if (!id) continue;
    groups.set(id, [...(groups.get(id) ?? []), s]);
  }
  const entries: EbsBackupEntry[] = [...groups].map(([backupId, list]) => {
    const sorted = [...list].sort(byDevice);
    const times = sorted
      .map((s) => s.startTime)
      .filter((t): t is string => t !== null)
      .sort();
    return {
      backupId,
      node: sorted.find((s) => s.tags[EBS_TAGS.node])?.tags[EBS_TAGS.node] ?? null,
      createdAt: times[0] ?? null,
      snapshots: sorted,
      restore: metadataFromSnapshots(sorted),
    };
  });
  return entries.sort((a, b) => (b.createdAt ?? '').localeCompare(a.createdAt ?? '') || b.backupId.localeCompare(a.backupId));
}

/** What a restored instance is tagged with: the original's tags, then where it came from and the call's token. */
export function restoredInstanceTags(meta: EbsRestoreMetadata, backupId: string, token: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.tags)) if (!k.startsWith('aws:')) tags[k] = v;
  tags[EBS_TAGS.restoredFrom] = clip(backupId);
  tags[EBS_TAGS.restoreToken] = clip(token);
  return tags;
}

/** Security groups of an instance; those of its primary interface when EC2 lists none on the instance itself. */
function securityGroupsOf(i: Instance): string[] {
  const own = (i.SecurityGroups ?? []).map((g) => g.GroupId ?? '').filter(Boolean);
  if (own.length) return own;
  return (primaryInterface(i)?.Groups ?? []).map((g) => g.GroupId ?? '').filter(Boolean);
}

/** What a restore needs to know of the instance, devices from its block device mappings and volumes. */
export function restoreMetadata(node: string, i: Instance, volumes: Volume[]): EbsRestoreMetadata {
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(tagRecord(i.Tags))) {
    // EC2's own tags cannot be set on a new instance; a restore sets its own token and origin.
    if (k.startsWith('aws:') || k === EBS_TAGS.restoreToken || k === EBS_TAGS.restoredFrom) continue;
    tags[k] = v;
  }
  const vols = new Map(volumes.map((v) => [v.VolumeId, v]));
  const devices: EbsDevice[] = (i.BlockDeviceMappings ?? [])
    .filter((m) => m.Ebs?.VolumeId && m.DeviceName)
    .map((m) => {
      const v = vols.get(m.Ebs?.VolumeId);
      const type = v?.VolumeType ?? null;
      const d: EbsDevice = {
        device: m.DeviceName as string,
        volumeId: m.Ebs?.VolumeId as string,
        sizeGiB: v?.Size ?? null,
        volumeType: type,
        deleteOnTermination: m.Ebs?.DeleteOnTermination === true,
      };
      if (type && PROVISIONED_IOPS.has(type) && typeof v?.Iops === 'number') d.iops = v.Iops;
      if (type === 'gp3' && typeof v?.Throughput === 'number') d.throughput = v.Throughput;
      return d;
    })
    .sort(byDevice);
  return {
    node,
    instanceId: i.InstanceId ?? '',
    privateIp: i.PrivateIpAddress ?? null,
    securityGroupIds: securityGroupsOf(i),
    instanceType: i.InstanceType ?? null,
    subnetId: i.SubnetId ?? null,
    availabilityZone: i.Placement?.AvailabilityZone ?? null,
    imageId: i.ImageId ?? null,
    rootDeviceName: i.RootDeviceName ?? null,
    tags,
    devices,
    architecture: i.Architecture ?? null,
    enaSupport: i.EnaSupport ?? null,
    bootMode: i.CurrentInstanceBootMode ?? i.BootMode ?? null,
  };
}

// ---- texts -------------------------------------------------------------------------------------

export function failedSnapshot(backupId: string, s: EbsSnapshotInfo, extra = ''): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `EBS snapshot ${s.snapshotId} of ${s.volumeId}${s.device ? ` (${s.device})` : ''} in backup ${backupId} failed: EC2 says its state is "error"${extra}. ` +
      'It holds no usable copy; run the backup again (a new ebsSnapshotCreate with the same backup id replaces a failed snapshot) or delete the backup.',
    Errors.SnapshotFailed,
  );
}

/** "snap-1 at /dev/sda1, snap-2 at /dev/sdf" */
export function snapshotList(list: EbsSnapshotInfo[]): string {
  return list.map((s) => `${s.snapshotId} at ${s.device ?? s.volumeId}`).join(', ');
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
