/**
 * EBS snapshot backups and restores: snapshot every volume of a database node's
 * instance, tagged so that the tags alone say which cluster and backup they belong to and what a
 * restore needs; wait for them; list, delete; and restore an instance from them with its recorded
 * private address, security groups, subnet, type and tags.
 *
 * Every step is check-then-act: a snapshot already carrying the backup id is found instead of made
 * again, a restore finds the instance its token made instead of launching another, a terminated
 * instance stays terminated. Every result counts its EC2 API calls and the SDK's own retries
 * (throttling, 5xx) from each answer's $metadata.attempts. When the SDK finally gives up, its
 * error propagates as an ordinary (retryable) error, so Temporal's activity retry carries on.
 *
 * Where an emulator differs from EC2 (moto: RegisterImage keeps no block device mappings or tags,
 * ClientToken is not idempotent, instance security groups given per interface show only there),
 * the code reads back what it asked for and covers the gap (launch-time mappings, the token tag,
 * the interface's groups) rather than trusting the request.
 */
import { createHash } from 'node:crypto';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type BlockDeviceMapping,
  type EC2Client,
  type Filter,
  type Image,
  type Instance,
  type Snapshot,
  type Tag,
  type Volume,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import {
  EBS_TAGS,
  type Ec2ApiUse,
  type EbsBackupEntry,
  type EbsDeleteResult,
  type EbsDevice,
  type EbsRestoreInstanceInput,
  type EbsRestoreInstanceResult,
  type EbsRestoreMetadata,
  type EbsRestorePlan,
  type EbsSnapshotCreateInput,
  type EbsSnapshotCreateResult,
  type EbsSnapshotInfo,
  type EbsSnapshotWaitInput,
  type EbsSnapshotWaitResult,
  type EbsTerminateResult,
} from '../../contract/backup';
import { configError } from '../resolver';
import { heartbeat, inActivity, sleep } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { awsErrorName, ec2For, findInstances, LIVE_STATES, nodeInstances, nodeOfInstance } from '../ec2';
import { Errors } from '../../contract/errors';

/** EC2 limits: characters of a tag value, tags per resource, characters of a snapshot description. */
export const TAG_VALUE_MAX = 256;
export const TAGS_PER_RESOURCE_MAX = 50;
const DESCRIPTION_MAX = 255;

/** Polling of the waits (snapshots, image, instance state). */
const POLL_MS = 2_000;
/** How long a restore waits for its image and its instance, and a terminate for "terminated". */
const IMAGE_WAIT_MS = 600_000;
const INSTANCE_WAIT_MS = 300_000;
/** When no snapshot carries the backup id, how long ebsSnapshotWait looks before it gives up (EC2's reads are eventually consistent). */
const NONE_FOUND_WAIT_MS = 30_000;

// ---- pure helpers (unit-tested) ----------------------------------------------------------------

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

/** "EC2 API: 5 calls, 3 retries" (retries only when there were any). */
export function apiText(api: Ec2ApiUse): string {
  const calls = `${api.calls} call${api.calls === 1 ? '' : 's'}`;
  return api.retries > 0 ? `EC2 API: ${calls}, ${api.retries} retr${api.retries === 1 ? 'y' : 'ies'}` : `EC2 API: ${calls}`;
}

export function snapshotDescription(backupId: string, node: string, volumeId: string, device: string, at: Date): string {
  return clip(`switchyard backup ${backupId} of ${node} (${volumeId} at ${device}) ${at.toISOString()}`, DESCRIPTION_MAX);
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

/** Every tag of one snapshot of a backup. Throws RestoreMetadataTooLarge when they exceed EC2's 50 per resource. */
export function snapshotTags(t: SnapshotTagInput): Record<string, string> {
  const tags: Record<string, string> = {
    [EBS_TAGS.cluster]: clip(t.cluster),
    [EBS_TAGS.backupId]: clip(t.backupId),
    [EBS_TAGS.node]: clip(t.node),
    [EBS_TAGS.workflowId]: clip(t.workflowId),
    [EBS_TAGS.createdBy]: clip(t.createdBy),
    [EBS_TAGS.device]: clip(t.device.device),
    [EBS_TAGS.deleteOnTermination]: String(t.device.deleteOnTermination),
    ...(t.device.volumeType ? { [EBS_TAGS.volumeType]: clip(t.device.volumeType) } : {}),
    ...(typeof t.device.iops === 'number' ? { [EBS_TAGS.iops]: String(t.device.iops) } : {}),
    ...(typeof t.device.throughput === 'number' ? { [EBS_TAGS.throughput]: String(t.device.throughput) } : {}),
    ...restoreTags(t.meta),
  };
  const n = Object.keys(tags).length;
  if (n > TAGS_PER_RESOURCE_MAX) {
    throw ApplicationFailure.nonRetryable(
      `the restore metadata of instance ${t.meta.instanceId} (node "${t.node}") needs ${n} tags on each snapshot, more than EC2's ${TAGS_PER_RESOURCE_MAX}: ` +
        `its ${Object.keys(t.meta.tags).length} tags are too long to record; shorten or remove some of the instance's tags`,
      Errors.RestoreMetadataTooLarge,
    );
  }
  return tags;
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

const byDevice = (a: { device: string | null }, b: { device: string | null }) => (a.device ?? '').localeCompare(b.device ?? '');

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

// ---- EC2 plumbing ------------------------------------------------------------------------------

/** Counts every send() of a client and the SDK's retries in it, from $metadata.attempts. */
class ApiCounter {
  calls = 0;
  retries = 0;

  attach(ec2: EC2Client): void {
    ec2.middlewareStack.add(
      (next) => async (args) => {
        try {
          const out = await next(args);
          this.count((out.output as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          return out;
        } catch (err) {
          this.count((err as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          throw err;
        }
      },
      { step: 'initialize', name: 'switchyardApiCount', override: true },
    );
    // Inside the SDK's retry loop: a heartbeat per attempt, so a call retried for long (throttling
    // backs off up to 20 s a time) keeps the activity alive.
    ec2.middlewareStack.add(
      (next) => async (args) => {
        heartbeat();
        return next(args);
      },
      { step: 'deserialize', name: 'switchyardAttemptHeartbeat', override: true },
    );
  }

  private count(attempts: number | undefined): void {
    this.calls += 1;
    this.retries += Math.max(0, (attempts ?? 1) - 1);
  }

  get use(): Ec2ApiUse {
    return { calls: this.calls, retries: this.retries };
  }
}

/** A client for the cluster with a call counter, its sockets always released. */
async function withCountedEc2<T>(rt: Runtime, call: Call, cluster: string, fn: (ec2: EC2Client, api: ApiCounter) => Promise<T>): Promise<T> {
  const ec2 = await ec2For(rt, call, cluster);
  const api = new ApiCounter();
  api.attach(ec2);
  try {
    return await fn(ec2, api);
  } finally {
    ec2.destroy();
  }
}

/** Sleep, ending early with a CancelledFailure when the activity is cancelled. */
async function pause(ms: number): Promise<void> {
  const ctx = inActivity();
  if (ctx) await ctx.sleep(ms);
  else await sleep(ms);
}

const tagFilter = (key: string, value: string): Filter => ({ Name: `tag:${key}`, Values: [value] });

/** Snapshots this account owns with the given tags, every page. */
async function describeSnapshots(ec2: EC2Client, tags: Record<string, string>): Promise<EbsSnapshotInfo[]> {
  const out: EbsSnapshotInfo[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: Object.entries(tags).map(([k, v]) => tagFilter(k, v)), MaxResults: 1000, NextToken: token }),
    );
    out.push(...(page.Snapshots ?? []).map(snapshotInfo));
    token = page.NextToken;
    heartbeat();
  } while (token);
  return out;
}

function backupSnapshots(ec2: EC2Client, cluster: string, backupId: string): Promise<EbsSnapshotInfo[]> {
  return describeSnapshots(ec2, { [EBS_TAGS.cluster]: cluster, [EBS_TAGS.backupId]: backupId });
}

async function describeVolumes(ec2: EC2Client, volumeIds: string[]): Promise<Volume[]> {
  if (volumeIds.length === 0) return [];
  const out: Volume[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(new DescribeVolumesCommand({ VolumeIds: volumeIds, NextToken: token }));
    out.push(...(page.Volumes ?? []));
    token = page.NextToken;
  } while (token);
  return out;
}

async function describeInstances(ec2: EC2Client, filters: Filter[]): Promise<Instance[]> {
  const out: Instance[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(new DescribeInstancesCommand({ Filters: filters, NextToken: token }));
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
    token = page.NextToken;
  } while (token);
  return out;
}

async function instanceById(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  try {
    const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).find((x) => x.InstanceId === instanceId);
  } catch (err) {
    if (awsErrorName(err) === 'InvalidInstanceID.NotFound') return undefined;
    throw err;
  }
}

/** Security groups of an instance; those of its primary interface when EC2 lists none on the instance itself. */
function securityGroupsOf(i: Instance): string[] {
  const own = (i.SecurityGroups ?? []).map((g) => g.GroupId ?? '').filter(Boolean);
  if (own.length) return own;
  const eni = (i.NetworkInterfaces ?? []).find((n) => n.Attachment?.DeviceIndex === 0);
  return (eni?.Groups ?? []).map((g) => g.GroupId ?? '').filter(Boolean);
}

/** What a restore needs to know of the instance, devices from its block device mappings and volumes. */
function restoreMetadata(node: string, i: Instance, volumes: Volume[]): EbsRestoreMetadata {
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

interface IpHolders {
  instance: EbsRestorePlan['ipHeldBy'];
  iface: NonNullable<EbsRestorePlan['ipInterface']> | null;
  /** An interface still attached to an instance that is gone: EC2 is releasing the address. */
  releasing: boolean;
}

/** Who holds a private IP right now: a live instance (primary address, or any address of an interface), or a leftover interface. */
async function ipHolders(ec2: EC2Client, call: Call, cluster: string, ip: string): Promise<IpHolders> {
  const live = await describeInstances(ec2, [
    { Name: 'private-ip-address', Values: [ip] },
    { Name: 'instance-state-name', Values: LIVE_STATES },
  ]);
  const enis =
    (await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'addresses.private-ip-address', Values: [ip] }] }))).NetworkInterfaces ?? [];
  let iface: IpHolders['iface'] = null;
  let releasing = false;
  for (const n of enis) {
    const holds = n.PrivateIpAddress === ip || (n.PrivateIpAddresses ?? []).some((a) => a.PrivateIpAddress === ip);
    if (!holds) continue;
    const attached = n.Attachment?.InstanceId;
    if (attached) {
      if (live.some((i) => i.InstanceId === attached)) continue;
      const i = await instanceById(ec2, attached);
      if (i && LIVE_STATES.includes(i.State?.Name ?? '')) {
        live.push(i);
        continue;
      }
      releasing = true;
    }
    iface ??= { networkInterfaceId: n.NetworkInterfaceId ?? '', status: n.Status ?? 'unknown', instanceId: attached ?? null };
  }
  if (live.length === 0) return { instance: null, iface, releasing };
  const i = live[0];
  const nis = await nodeInstances(ec2, call.top.cluster(cluster));
  const tags = tagRecord(i.Tags);
  return {
    instance: {
      instanceId: i.InstanceId ?? '',
      state: i.State?.Name ?? 'unknown',
      node: nodeOfInstance(nis, i.InstanceId)?.node ?? null,
      restoredFrom: tags[EBS_TAGS.restoredFrom] ?? null,
    },
    iface,
    releasing,
  };
}

function holderText(h: NonNullable<EbsRestorePlan['ipHeldBy']>): string {
  const what = [
    h.node ? `node "${h.node}"` : 'no database node of the cluster',
    h.state,
    h.restoredFrom ? `restored from backup ${h.restoredFrom}` : '',
  ].filter(Boolean);
  return `${h.instanceId} (${what.join(', ')})`;
}

/** The backup's snapshots and restore metadata, or a non-retryable failure saying what is missing. */
async function loadBackup(ec2: EC2Client, cluster: string, backupId: string): Promise<{ snaps: EbsSnapshotInfo[]; meta: EbsRestoreMetadata }> {
  const snaps = (await backupSnapshots(ec2, cluster, backupId)).sort(byDevice);
  if (snaps.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `no EBS snapshot is tagged ${EBS_TAGS.cluster}=${cluster} and ${EBS_TAGS.backupId}=${backupId}: there is no such EBS backup (ebsBackupsList shows the ones that exist)`,
      Errors.BackupNotFound,
    );
  }
  const meta = metadataFromSnapshots(snaps);
  if (!meta) {
    throw ApplicationFailure.nonRetryable(
      `the snapshots of backup ${backupId} (${snaps.map((s) => s.snapshotId).join(', ')}) carry no readable ${EBS_TAGS.restore} tag: what the instance was (address, groups, type, subnet) is unknown, so it cannot be restored from them`,
      Errors.BackupUnusable,
    );
  }
  return { snaps, meta };
}

function failedSnapshot(backupId: string, s: EbsSnapshotInfo, extra = ''): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `EBS snapshot ${s.snapshotId} of ${s.volumeId}${s.device ? ` (${s.device})` : ''} in backup ${backupId} failed: EC2 says its state is "error"${extra}. ` +
      'It holds no usable copy; run the backup again (a new ebsSnapshotCreate with the same backup id replaces a failed snapshot) or delete the backup.',
    Errors.SnapshotFailed,
  );
}

function ids(list: EbsSnapshotInfo[]): string {
  return list.map((s) => `${s.snapshotId} at ${s.device ?? s.volumeId}`).join(', ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Poll an instance until `done(state)` or the deadline; heartbeats. Returns the last description. */
async function waitInstance(
  ec2: EC2Client,
  instanceId: string,
  done: (state: string) => boolean,
  timeoutMs: number,
): Promise<{ instance: Instance | undefined; state: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const instance = await instanceById(ec2, instanceId);
    const state = instance?.State?.Name ?? 'terminated';
    if (done(state) || Date.now() >= deadline) return { instance, state };
    heartbeat({ instanceId, state });
    await pause(POLL_MS);
  }
}

/** Our image for the backup: tagged with the token, else by its name (owned by this account). */
async function findRestoreImage(ec2: EC2Client, cluster: string, backupId: string, token: string): Promise<Image | undefined> {
  const usable = (imgs: Image[] | undefined) => (imgs ?? []).filter((i) => i.State !== 'deregistered' && i.State !== 'failed' && i.State !== 'disabled');
  const byToken = usable((await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [tagFilter(EBS_TAGS.restoreToken, token)] }))).Images);
  if (byToken.length) return byToken[0];
  const byName = usable(
    (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [restoreImageName(cluster, backupId)] }] }))).Images,
  );
  return byName.sort((a, b) => (a.CreationDate ?? '').localeCompare(b.CreationDate ?? ''))[0];
}

/** The image's block device mappings reference exactly these snapshots at their devices. */
function imageCarries(img: Image | undefined, mappings: BlockDeviceMapping[]): boolean {
  const have = new Map((img?.BlockDeviceMappings ?? []).map((m) => [m.DeviceName, m.Ebs?.SnapshotId]));
  return mappings.every((m) => have.get(m.DeviceName) === m.Ebs?.SnapshotId);
}

// ---- the activities ----------------------------------------------------------------------------

export function ebsBackupActivities(rt: Runtime) {
  return {
    /**
     * Snapshot every EBS volume of the node's one live instance, each tagged with the cluster,
     * backup id, node, workflow id, creator, device and the restore metadata. A volume that
     * already has a snapshot with this cluster and backup id (pending or completed: a resumed run)
     * is not snapshotted again; a failed ("error") one is replaced and deleted. Duplicates made by
     * the SDK retrying a CreateSnapshot whose answer was lost are deleted again.
     */
    ebsSnapshotCreate: rt.activity(async (input: EbsSnapshotCreateInput, call): Promise<EbsSnapshotCreateResult> => {
      const backupId = checkBackupId(input.backupId);
      const n = call.top.node(input.cluster, input.node);
      if (!n.ec2)
        throw configError(
          `database node "${input.node}" of cluster "${input.cluster}" has no EC2 selector (postgres.nodes.${input.node}.ec2): there is no instance to snapshot`,
        );
      const sel = n.ec2;
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const matches = await findInstances(ec2, sel);
        const selText =
          sel.instanceId ??
          Object.entries(sel.tags ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(',');
        if (matches.length === 0) {
          throw ApplicationFailure.nonRetryable(
            `no non-terminated EC2 instance matches ${selText} for node "${input.node}" of cluster "${input.cluster}": there is nothing to snapshot (check postgres.nodes.${input.node}.ec2)`,
            Errors.Ec2InstanceNotFound,
          );
        }
        if (matches.length > 1) {
          throw ApplicationFailure.nonRetryable(
            `${matches.length} EC2 instances match ${selText} for node "${input.node}" of cluster "${input.cluster}" (${matches.map((i) => i.InstanceId).join(', ')}): refusing to guess which one to back up`,
            Errors.Ec2Ambiguous,
          );
        }
        const inst = matches[0];
        const instanceId = inst.InstanceId ?? '';
        const attached = (inst.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId).filter((v): v is string => !!v);
        if (attached.length === 0) {
          throw ApplicationFailure.nonRetryable(
            `EC2 instance ${instanceId} of node "${input.node}" has no EBS volume attached: there is nothing to snapshot`,
            Errors.Ec2NoVolumes,
          );
        }
        const meta = restoreMetadata(input.node, inst, await describeVolumes(ec2, attached));
        heartbeat({ instanceId, devices: meta.devices.length });

        const existing = await backupSnapshots(ec2, input.cluster, backupId);
        const created: string[] = [];
        const found: string[] = [];
        const removed: string[] = [];
        const result: EbsSnapshotInfo[] = [];
        const remove = async (snapshotId: string) => {
          try {
            await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
          } catch (err) {
            if (awsErrorName(err) !== 'InvalidSnapshot.NotFound') throw err;
          }
          removed.push(snapshotId);
        };
        for (const dev of meta.devices) {
          const mine = existing.filter((s) => s.volumeId === dev.volumeId).sort((a, b) => (a.startTime ?? '').localeCompare(b.startTime ?? ''));
          const good = mine.filter((s) => s.state !== 'error');
          if (good.length > 0) {
            // A resumed run: keep the first, and any duplicates an earlier attempt left go.
            found.push(good[0].snapshotId);
            result.push(good[0]);
            for (const dup of good.slice(1)) await remove(dup.snapshotId);
            continue;
          }
          const tags = snapshotTags({
            cluster: input.cluster,
            backupId,
            node: input.node,
            workflowId: input.workflowId,
            createdBy: input.requestedBy,
            device: dev,
            meta,
          });
          const snap = await ec2.send(
            new CreateSnapshotCommand({
              VolumeId: dev.volumeId,
              Description: snapshotDescription(backupId, input.node, dev.volumeId, dev.device, rt.now()),
              TagSpecifications: [{ ResourceType: 'snapshot', Tags: tagList(tags) }],
            }),
          );
          const info = snapshotInfo({ ...snap, Tags: snap.Tags?.length ? snap.Tags : tagList(tags) });
          created.push(info.snapshotId);
          result.push(info);
          rt.log.info('EBS snapshot created', {
            cluster: input.cluster,
            backupId,
            node: input.node,
            volumeId: dev.volumeId,
            device: dev.device,
            snapshotId: info.snapshotId,
          });
          for (const bad of mine) await remove(bad.snapshotId);
          if ((snap.$metadata.attempts ?? 1) > 1) {
            // The SDK retried: an attempt whose answer was lost may have made a snapshot too.
            const again = (await backupSnapshots(ec2, input.cluster, backupId)).filter((s) => s.volumeId === dev.volumeId && s.snapshotId !== info.snapshotId);
            for (const dup of again) if (!removed.includes(dup.snapshotId)) await remove(dup.snapshotId);
          }
          heartbeat({ instanceId, created: created.length, found: found.length });
        }

        const parts: string[] = [];
        const made = result.filter((s) => created.includes(s.snapshotId));
        const old = result.filter((s) => found.includes(s.snapshotId));
        if (made.length) parts.push(`${plural(made.length, 'snapshot')} created (${ids(made)})`);
        if (old.length) parts.push(`${plural(old.length, 'snapshot')} found from an earlier attempt (${ids(old)})`);
        parts[parts.length - 1] += ` of ${instanceId} (node "${input.node}")`;
        if (removed.length) parts.push(`removed ${removed.join(', ')} (failed or duplicate)`);
        return {
          backupId,
          node: input.node,
          instanceId,
          restore: meta,
          snapshots: result,
          created,
          found,
          api: api.use,
          detail: `${parts.join('; ')}; ${apiText(api.use)}`,
        };
      });
    }),

    /**
     * Wait (heartbeating, polling every ~2 s) until every snapshot of the backup is "completed", or
     * timeoutSeconds passes (completed: false). A snapshot in state "error" is a non-retryable
     * SnapshotFailed; no snapshot at all (after a short grace for EC2's eventual consistency) a
     * non-retryable BackupNotFound.
     */
    ebsSnapshotWait: rt.activity(async (input: EbsSnapshotWaitInput, call): Promise<EbsSnapshotWaitResult> => {
      const backupId = checkBackupId(input.backupId);
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const started = Date.now();
        const deadline = started + Math.max(0, input.timeoutSeconds) * 1000;
        const noneDeadline = started + Math.min(NONE_FOUND_WAIT_MS, Math.max(0, input.timeoutSeconds) * 1000);
        for (;;) {
          const snaps = (await backupSnapshots(ec2, input.cluster, backupId)).sort(byDevice);
          const failed = snaps.find((s) => s.state === 'error');
          if (failed) throw failedSnapshot(backupId, failed);
          const done = snaps.filter((s) => s.state === 'completed');
          const complete = snaps.length > 0 && done.length === snaps.length;
          const now = Date.now();
          if (snaps.length === 0 && now >= noneDeadline) {
            throw ApplicationFailure.nonRetryable(
              `no EBS snapshot is tagged ${EBS_TAGS.cluster}=${input.cluster} and ${EBS_TAGS.backupId}=${backupId}: nothing to wait for (was ebsSnapshotCreate run for this backup id?)`,
              Errors.BackupNotFound,
            );
          }
          if (complete || now >= deadline) {
            const waitedMs = now - started;
            const progress = snaps.map((s) => `${s.snapshotId} ${s.state}${s.state === 'completed' ? '' : ` ${s.progress ?? '?'}`}`).join(', ');
            return {
              backupId,
              completed: complete,
              snapshots: snaps,
              waitedMs,
              api: api.use,
              detail: complete
                ? `${plural(snaps.length, 'snapshot')} of backup ${backupId} completed after ${(waitedMs / 1000).toFixed(1)} s (${snaps.map((s) => s.snapshotId).join(', ')}); ${apiText(api.use)}`
                : `${done.length} of ${plural(snaps.length, 'snapshot')} of backup ${backupId} completed when the ${input.timeoutSeconds} s wait ended (${progress}); ${apiText(api.use)}`,
            };
          }
          heartbeat({ backupId, completed: done.length, total: snaps.length, progress: snaps.map((s) => s.progress) });
          await pause(Math.min(POLL_MS, Math.max(1, deadline - now)));
        }
      });
    }),

    /** Every EBS backup of the cluster (snapshots tagged with it, every page), grouped by backup id, newest first. */
    ebsBackupsList: rt.activity(async (input: { cluster: string }, call): Promise<EbsBackupEntry[]> => {
      call.top.cluster(input.cluster);
      return withCountedEc2(rt, call, input.cluster, async (ec2) => groupBackups(await describeSnapshots(ec2, { [EBS_TAGS.cluster]: input.cluster })));
    }),

    /**
     * Delete the snapshots of exactly this cluster and backup id (already gone is fine), after
     * deregistering the image a restore registered from them (EC2 refuses to delete a snapshot an
     * image still uses).
     */
    ebsSnapshotsDelete: rt.activity(async (input: { cluster: string; backupId: string }, call): Promise<EbsDeleteResult> => {
      const backupId = checkBackupId(input.backupId);
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const images =
          (
            await ec2.send(
              new DescribeImagesCommand({
                Owners: ['self'],
                Filters: [tagFilter(EBS_TAGS.cluster, input.cluster), tagFilter(EBS_TAGS.restoredFrom, backupId)],
              }),
            )
          ).Images ?? [];
        const deregisteredImages: string[] = [];
        for (const img of images) {
          if (!img.ImageId || img.State === 'deregistered') continue;
          try {
            await ec2.send(new DeregisterImageCommand({ ImageId: img.ImageId }));
          } catch (err) {
            if (awsErrorName(err) !== 'InvalidAMIID.NotFound' && awsErrorName(err) !== 'InvalidAMIID.Unavailable') throw err;
          }
          deregisteredImages.push(img.ImageId);
        }
        const snaps = await backupSnapshots(ec2, input.cluster, backupId);
        const deleted: string[] = [];
        for (const s of snaps) {
          try {
            await ec2.send(new DeleteSnapshotCommand({ SnapshotId: s.snapshotId }));
          } catch (err) {
            if (awsErrorName(err) !== 'InvalidSnapshot.NotFound') throw err;
          }
          deleted.push(s.snapshotId);
          heartbeat({ backupId, deleted: deleted.length });
        }
        rt.log.info('EBS backup deleted', { cluster: input.cluster, backupId, deleted, deregisteredImages });
        const img = deregisteredImages.length ? `; deregistered image ${deregisteredImages.join(', ')}` : '';
        return {
          backupId,
          deleted,
          deregisteredImages,
          api: api.use,
          detail: `${deleted.length ? `deleted ${plural(deleted.length, 'snapshot')} of backup ${backupId} (${deleted.join(', ')})` : `no snapshot of backup ${backupId} left to delete`}${img}; ${apiText(api.use)}`,
        };
      });
    }),

    /** The backup's snapshots and restore metadata, and who holds its recorded private IP now. */
    ebsRestorePlan: rt.activity(async (input: { cluster: string; backupId: string }, call): Promise<EbsRestorePlan> => {
      const backupId = checkBackupId(input.backupId);
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const { snaps, meta } = await loadBackup(ec2, input.cluster, backupId);
        const holders = meta.privateIp ? await ipHolders(ec2, call, input.cluster, meta.privateIp) : { instance: null, iface: null, releasing: false };
        const states = [...new Set(snaps.map((s) => s.state))].join('/');
        const what = `backup ${backupId}: ${plural(snaps.length, 'snapshot')} (${states}) of ${meta.instanceId} (node "${meta.node}", ${meta.instanceType ?? 'unknown type'} in ${meta.subnetId ?? 'no subnet'})`;
        let ip: string;
        if (!meta.privateIp) ip = 'no private IP recorded';
        else if (holders.instance) ip = `${meta.privateIp} is held by ${holderText(holders.instance)}: it must be terminated before the restore`;
        else if (holders.iface)
          ip = `${meta.privateIp} is held by network interface ${holders.iface.networkInterfaceId} (${holders.iface.status}${holders.iface.instanceId ? `, attached to ${holders.iface.instanceId}, which is gone` : ''})`;
        else ip = `${meta.privateIp} is free`;
        return {
          backupId,
          restore: meta,
          snapshots: snaps,
          ipHeldBy: holders.instance,
          ipInterface: holders.iface,
          api: api.use,
          detail: `${what}; ${ip}; ${apiText(api.use)}`,
        };
      });
    }),

    /** Terminate an instance and wait (heartbeating) until EC2 says "terminated"; one already gone is success. */
    ebsTerminateInstance: rt.activity(async (input: { cluster: string; instanceId: string }, call): Promise<EbsTerminateResult> => {
      if (typeof input.instanceId !== 'string' || !/^i-[0-9a-f]+$/.test(input.instanceId)) {
        throw configError(`expected an instance id such as "i-0123456789abcdef0", got ${JSON.stringify(input.instanceId)}`);
      }
      const instanceId = input.instanceId;
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const before = (await instanceById(ec2, instanceId))?.State?.Name ?? 'terminated';
        let changed = false;
        if (before !== 'terminated') {
          if (before !== 'shutting-down') {
            try {
              await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
              changed = true;
            } catch (err) {
              const name = awsErrorName(err);
              if (name === 'OperationNotPermitted') {
                throw ApplicationFailure.nonRetryable(
                  `EC2 refuses to terminate ${instanceId}: termination protection is on (disable it with ModifyInstanceAttribute DisableApiTermination=false if this instance really is to go)`,
                  Errors.TerminateRefused,
                );
              }
              if (name !== 'InvalidInstanceID.NotFound') throw err;
            }
            rt.log.info('EC2 instance terminate requested', { cluster: input.cluster, instanceId, stateBefore: before });
          }
        }
        const { state } = await waitInstance(ec2, instanceId, (s) => s === 'terminated', INSTANCE_WAIT_MS);
        if (state !== 'terminated')
          throw new Error(`EC2 instance ${instanceId} is still ${state} ${INSTANCE_WAIT_MS / 1000} s after it was asked to terminate (was ${before})`);
        return {
          instanceId,
          terminated: true,
          changed,
          api: api.use,
          detail: `${changed ? `terminated ${instanceId} (was ${before})` : `${instanceId} was already ${before === 'terminated' ? 'terminated' : `${before}, now terminated`}`}; ${apiText(api.use)}`,
        };
      });
    }),

    /**
     * Launch an instance from the backup: an image registered from the root snapshot with every
     * snapshot at its recorded device (named switchyard-<cluster>-<backupId>, reused), then
     * RunInstances with the recorded type, subnet, security groups, private IP and tags (plus
     * restored-from and the token), waiting until it runs. Idempotent by token: an instance
     * tagged with it is returned instead. Refuses (non-retryable PrivateIpInUse) while a live
     * instance or a leftover interface holds the recorded private IP: it never launches a duplicate.
     */
    ebsRestoreInstance: rt.activity(async (input: EbsRestoreInstanceInput, call): Promise<EbsRestoreInstanceResult> => {
      const backupId = checkBackupId(input.backupId);
      if (typeof input.token !== 'string' || input.token.length === 0 || Array.from(input.token).length > TAG_VALUE_MAX) {
        throw configError(`a restore token is 1 to ${TAG_VALUE_MAX} characters; got ${JSON.stringify(input.token)}`);
      }
      const token = input.token;
      const cluster = input.cluster;
      call.top.cluster(cluster);
      return withCountedEc2(rt, call, cluster, async (ec2, api) => {
        const finish = async (instanceId: string, imageId: string, launched: boolean, how: string): Promise<EbsRestoreInstanceResult> => {
          const { instance, state } = await waitInstance(ec2, instanceId, (s) => s !== 'pending', INSTANCE_WAIT_MS);
          if (state === 'pending') throw new Error(`restored instance ${instanceId} is still pending ${INSTANCE_WAIT_MS / 1000} s after launch`);
          const privateIp = instance?.PrivateIpAddress ?? null;
          const result = { backupId, instanceId, imageId, privateIp, state, launched, api: api.use };
          if (state === 'running') return { ...result, detail: `${how}; running; ${apiText(api.use)}` };
          // Found from an earlier attempt and since stopped by someone: report it as it is, never launch another.
          if (!launched && state !== 'terminated')
            return { ...result, detail: `${how}; it is ${state}, not running (stopped since it was launched?); ${apiText(api.use)}` };
          throw ApplicationFailure.nonRetryable(
            `instance ${instanceId} launched from backup ${backupId} went ${state} instead of running (${instance?.StateReason?.Message ?? 'EC2 gave no reason'}): check the image ${imageId} and the snapshots before restoring again`,
            Errors.RestoreLaunchFailed,
          );
        };

        // 1. An earlier attempt with this token already launched it.
        const mine = await describeInstances(ec2, [tagFilter(EBS_TAGS.restoreToken, token), { Name: 'instance-state-name', Values: LIVE_STATES }]);
        if (mine.length > 0) {
          const i = mine.sort((a, b) => String(a.LaunchTime ?? '').localeCompare(String(b.LaunchTime ?? '')))[0];
          const extra =
            mine.length > 1
              ? ` (and ${mine
                  .slice(1)
                  .map((x) => x.InstanceId)
                  .join(', ')} with the same token)`
              : '';
          return finish(
            i.InstanceId ?? '',
            i.ImageId ?? '',
            false,
            `found ${i.InstanceId} launched from backup ${backupId} by an earlier attempt with this token${extra}, at ${i.PrivateIpAddress ?? 'no private IP'}`,
          );
        }

        // 2. What to launch.
        const { snaps, meta } = await loadBackup(ec2, cluster, backupId);
        const failed = snaps.find((s) => s.state === 'error');
        if (failed) throw failedSnapshot(backupId, failed);
        const pending = snaps.filter((s) => s.state !== 'completed');
        if (pending.length)
          throw new Error(
            `snapshots of backup ${backupId} are not completed yet (${pending.map((s) => `${s.snapshotId} ${s.state} ${s.progress ?? ''}`.trim()).join(', ')}): an image needs completed snapshots`,
          );
        const rootDevice = meta.rootDeviceName ?? meta.devices[0]?.device ?? null;
        const usable = snaps.filter((s) => s.device);
        if (!rootDevice || !usable.some((s) => s.device === rootDevice)) {
          throw ApplicationFailure.nonRetryable(
            `backup ${backupId} has no snapshot of the root device ${rootDevice ?? '(unknown)'} of ${meta.instanceId} (it has ${ids(snaps)}): an instance cannot boot from it`,
            Errors.BackupUnusable,
          );
        }
        if (!meta.instanceType)
          throw ApplicationFailure.nonRetryable(`backup ${backupId} does not record the instance type of ${meta.instanceId}`, Errors.BackupUnusable);

        // 3. Never a second holder of the address.
        if (meta.privateIp) {
          const h = await ipHolders(ec2, call, cluster, meta.privateIp);
          if (h.instance) {
            throw ApplicationFailure.nonRetryable(
              `refusing to restore backup ${backupId}: its private IP ${meta.privateIp} is held by ${holderText(h.instance)}; nothing was launched. ` +
                'Terminate that instance first (the restore workflow asks at "replace-instance"), then restore again.',
              Errors.PrivateIpInUse,
            );
          }
          if (h.releasing)
            throw new Error(
              `${meta.privateIp} is still on network interface ${h.iface?.networkInterfaceId} of ${h.iface?.instanceId}, which is terminated: EC2 has not released it yet`,
            );
          if (h.iface) {
            throw ApplicationFailure.nonRetryable(
              `refusing to restore backup ${backupId}: its private IP ${meta.privateIp} is held by network interface ${h.iface.networkInterfaceId} (${h.iface.status}), which no instance uses; nothing was launched. Delete the interface or free the address, then restore again.`,
              Errors.PrivateIpInUse,
            );
          }
        }
        heartbeat({ backupId, step: 'image' });

        // 4. The image: ours from an earlier attempt, else registered from the snapshots.
        const mappings: BlockDeviceMapping[] = usable.sort(byDevice).map((s) => snapshotMapping(s.snapshotId, deviceOf(s) as EbsDevice));
        let image = await findRestoreImage(ec2, cluster, backupId, token);
        let registered = false;
        const imageTags = {
          [EBS_TAGS.cluster]: clip(cluster),
          [EBS_TAGS.restoredFrom]: clip(backupId),
          [EBS_TAGS.node]: clip(meta.node),
          [EBS_TAGS.restoreToken]: clip(token),
        };
        if (!image) {
          const r = await ec2.send(
            new RegisterImageCommand({
              Name: restoreImageName(cluster, backupId),
              Description: clip(`switchyard restore of ${meta.node} (${meta.instanceId}) from backup ${backupId}`, DESCRIPTION_MAX),
              RootDeviceName: rootDevice,
              VirtualizationType: 'hvm',
              ...(meta.architecture ? { Architecture: meta.architecture as 'x86_64' } : {}),
              ...(meta.enaSupport ? { EnaSupport: true } : {}),
              ...(meta.bootMode ? { BootMode: meta.bootMode as 'uefi' } : {}),
              BlockDeviceMappings: mappings,
            }),
          );
          // Tagged separately: emulators ignore RegisterImage's TagSpecifications.
          await ec2.send(new CreateTagsCommand({ Resources: [r.ImageId as string], Tags: tagList(imageTags) }));
          registered = true;
          rt.log.info('EC2 image registered from backup', { cluster, backupId, imageId: r.ImageId });
          image = { ImageId: r.ImageId, State: 'pending' };
        }
        const imageId = image.ImageId as string;
        const imgDeadline = Date.now() + IMAGE_WAIT_MS;
        for (;;) {
          image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
          if (image?.State === 'available') break;
          if (image?.State === 'failed' || image?.State === 'invalid') {
            throw ApplicationFailure.nonRetryable(
              `image ${imageId} registered from backup ${backupId} is ${image.State}: ${image.StateReason?.Message ?? 'no reason given'}`,
              Errors.BackupUnusable,
            );
          }
          if (Date.now() >= imgDeadline)
            throw new Error(`image ${imageId} from backup ${backupId} is still ${image?.State ?? 'unknown'} after ${IMAGE_WAIT_MS / 1000} s`);
          heartbeat({ imageId, state: image?.State });
          await pause(POLL_MS);
        }
        // An image that does not carry the snapshots (an emulator dropped the mappings) gets them at launch.
        const launchMappings = imageCarries(image, mappings) ? undefined : mappings;

        // 5. Launch with the recorded network and tags.
        const instanceTags = restoredInstanceTags(meta, backupId, token);
        if (Object.keys(instanceTags).length > TAGS_PER_RESOURCE_MAX) {
          throw ApplicationFailure.nonRetryable(
            `the restored instance would need ${Object.keys(instanceTags).length} tags, more than EC2's ${TAGS_PER_RESOURCE_MAX}: the recorded instance had too many to add ${EBS_TAGS.restoredFrom} and ${EBS_TAGS.restoreToken}`,
            Errors.RestoreMetadataTooLarge,
          );
        }
        const volumeTags = {
          [EBS_TAGS.cluster]: clip(cluster),
          [EBS_TAGS.restoredFrom]: clip(backupId),
          [EBS_TAGS.node]: clip(meta.node),
          [EBS_TAGS.restoreToken]: clip(token),
        };
        let launched: Instance | undefined;
        try {
          const r = await ec2.send(
            new RunInstancesCommand({
              ImageId: imageId,
              InstanceType: meta.instanceType as 't3.micro',
              MinCount: 1,
              MaxCount: 1,
              ClientToken: clientToken(token),
              ...(meta.subnetId
                ? {
                    NetworkInterfaces: [
                      {
                        DeviceIndex: 0,
                        SubnetId: meta.subnetId,
                        Groups: meta.securityGroupIds.length ? meta.securityGroupIds : undefined,
                        PrivateIpAddress: meta.privateIp ?? undefined,
                        DeleteOnTermination: true,
                      },
                    ],
                  }
                : {
                    SecurityGroupIds: meta.securityGroupIds.length ? meta.securityGroupIds : undefined,
                    PrivateIpAddress: meta.privateIp ?? undefined,
                    Placement: meta.availabilityZone ? { AvailabilityZone: meta.availabilityZone } : undefined,
                  }),
              ...(launchMappings ? { BlockDeviceMappings: launchMappings } : {}),
              TagSpecifications: [
                { ResourceType: 'instance', Tags: tagList(instanceTags) },
                { ResourceType: 'volume', Tags: tagList(volumeTags) },
              ],
            }),
          );
          launched = r.Instances?.[0];
        } catch (err) {
          if (awsErrorName(err) === 'InvalidIPAddress.InUse') {
            throw ApplicationFailure.nonRetryable(
              `EC2 refused to launch from backup ${backupId}: ${meta.privateIp} is in use (${(err as Error).message}); nothing was launched`,
              Errors.PrivateIpInUse,
            );
          }
          throw err;
        }
        const instanceId = launched?.InstanceId;
        if (!instanceId) throw new Error(`RunInstances from image ${imageId} answered without an instance`);
        rt.log.info('EC2 instance launched from backup', { cluster, backupId, instanceId, imageId, privateIp: meta.privateIp, token });
        const how =
          `launched ${instanceId} (${meta.instanceType} in ${meta.subnetId ?? 'the default subnet'}, ${meta.privateIp ?? 'any private IP'}, groups ${meta.securityGroupIds.join(',') || 'default'}) ` +
          `from ${registered ? 'new' : 'existing'} image ${imageId} of backup ${backupId}${launchMappings ? ' (snapshots mapped at launch: the image lists none of them)' : ''}`;
        return finish(instanceId, imageId, true, how);
      });
    }),
  };
}

export type EbsBackupActivities = ReturnType<typeof ebsBackupActivities>;
