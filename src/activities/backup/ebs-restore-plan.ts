/**
 * Before an instance is restored from an EBS backup: what the backup holds (its snapshots and the
 * restore metadata in their tags), who holds its recorded private IP now, and terminating the
 * instance that holds it (the restore workflow asks first). A terminated instance stays terminated.
 */
import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand, TerminateInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import { EBS_TAGS, type EbsRestoreMetadata, type EbsRestorePlan, type EbsSnapshotInfo, type EbsTerminateResult } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { configError } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { awsErrorName, describeInstances, instanceById, interfacesHolding, LIVE_STATES, nodeInstances, nodeOfInstance, waitInstance } from '../ec2';
import { apiText, backupSnapshots, type EbsRegion, ebsRegion, inRegion, withCountedEc2In } from './ebs-api';
import { byDevice, metadataFromSnapshots, plural, tagRecord } from './ebs-tags';

/** How long a terminate waits for "terminated" (and a restore for its instance to leave "pending"). */
export const INSTANCE_WAIT_MS = 300_000;

export interface IpHolders {
  instance: EbsRestorePlan['ipHeldBy'];
  iface: NonNullable<EbsRestorePlan['ipInterface']> | null;
  /** An interface still attached to an instance that is gone: EC2 is releasing the address. */
  releasing: boolean;
}

/** Who holds a private IP right now: a live instance (primary address, or any address of an interface), or a leftover interface. */
export async function ipHolders(ec2: EC2Client, call: Call, cluster: string, ip: string): Promise<IpHolders> {
  const live = await describeInstances(ec2, [
    { Name: 'private-ip-address', Values: [ip] },
    { Name: 'instance-state-name', Values: LIVE_STATES },
  ]);
  const enis = await interfacesHolding(ec2, ip);
  let iface: IpHolders['iface'] = null;
  let releasing = false;
  for (const n of enis) {
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

export function holderText(h: NonNullable<EbsRestorePlan['ipHeldBy']>): string {
  const what = [
    h.node ? `node "${h.node}"` : 'no database node of the cluster',
    h.state,
    h.restoredFrom ? `restored from backup ${h.restoredFrom}` : '',
  ].filter(Boolean);
  return `${h.instanceId} (${what.join(', ')})`;
}

/** The backup's snapshots and restore metadata, or a non-retryable failure saying what is missing. */
export async function loadBackup(
  ec2: EC2Client,
  cluster: string,
  backupId: string,
  where?: EbsRegion,
): Promise<{ snaps: EbsSnapshotInfo[]; meta: EbsRestoreMetadata }> {
  const snaps = (await backupSnapshots(ec2, cluster, backupId)).sort(byDevice);
  if (snaps.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `no EBS snapshot${where ? inRegion(where) : ''} is tagged ${EBS_TAGS.cluster}=${cluster} and ${EBS_TAGS.backupId}=${backupId}: there is no such EBS backup` +
        `${where ? inRegion(where) : ''} (ebsBackupsList shows the ones that exist)`,
      Errors.BackupNotFound,
    );
  }
  const meta = metadataFromSnapshots(snaps);
  if (!meta) {
    throw ApplicationFailure.nonRetryable(
      `the snapshots of backup ${backupId} (${snaps.map((s) => s.snapshotId).join(', ')}) carry no readable ${EBS_TAGS.restore} tag: what ` +
        `the instance was (address, groups, type, subnet) is unknown, so it cannot be restored from them`,
      Errors.BackupUnusable,
    );
  }
  return { snaps, meta };
}

/** Does EC2 know this subnet / security group here? NotFound is no; any other error propagates (unknown is never "there"). */
async function exists(what: () => Promise<unknown>, notFound: string): Promise<boolean> {
  try {
    await what();
    return true;
  } catch (err) {
    if (awsErrorName(err) === notFound) return false;
    throw err;
  }
}

/**
 * The network a restore launches into, as restore metadata: in the source region the recorded one.
 * In a copy region with `network` (backup.ebs.copyTo[].network): that subnet and those groups,
 * checked to exist there, and the recorded private IP only when it lies in that subnet's range (else
 * null: EC2 picks one, and `note` says so). In a copy region without it: the recorded subnet and
 * groups, refused (non-retryable BackupUnusable) when that region does not have them, naming each
 * one missing. A restore does not invent a network. Nothing is checked in the source region.
 */
export async function networkIn(
  ec2: EC2Client,
  where: EbsRegion,
  backupId: string,
  meta: EbsRestoreMetadata,
): Promise<{ meta: EbsRestoreMetadata; note: string | null }> {
  if (!where.copy) return { meta, note: null };
  const net = where.copy.network;
  if (net) {
    const missing: string[] = [];
    let cidr: string | null = null;
    let az: string | null = null;
    try {
      const r = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [net.subnetId] }));
      cidr = r.Subnets?.[0]?.CidrBlock ?? null;
      az = r.Subnets?.[0]?.AvailabilityZone ?? null;
    } catch (err) {
      if (awsErrorName(err) !== 'InvalidSubnetID.NotFound') throw err;
      missing.push(`subnet ${net.subnetId}`);
    }
    for (const g of net.securityGroupIds)
      if (!(await exists(() => ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [g] })), 'InvalidGroup.NotFound'))) missing.push(`security group ${g}`);
    if (missing.length)
      throw ApplicationFailure.nonRetryable(
        `backup ${backupId} cannot be restored in ${where.region}: backup.ebs.copyTo's network for ${where.region} names ${missing.join(' and ')}, which ${where.region} does not have`,
        Errors.BackupUnusable,
      );
    const keepIp = meta.privateIp !== null && cidr !== null && ipInCidr(meta.privateIp, cidr);
    const note = keepIp
      ? `into ${net.subnetId} (${cidr}) of ${where.region} with the recorded private IP ${meta.privateIp}`
      : `into ${net.subnetId} (${cidr ?? '?'}) of ${where.region}: the recorded private IP ${meta.privateIp ?? '(none)'} is not in that subnet, EC2 picks one ` +
        `(traffic drivers that name the old address must be pointed at the new one)`;
    return {
      meta: { ...meta, subnetId: net.subnetId, securityGroupIds: [...net.securityGroupIds], privateIp: keepIp ? meta.privateIp : null, availabilityZone: az },
      note,
    };
  }
  await requireNetworkIn(ec2, where, backupId, meta);
  return { meta, note: null };
}

/** Is the IPv4 address inside the CIDR block ("10.1.0.0/16")? */
export function ipInCidr(ip: string, cidr: string): boolean {
  const toInt = (a: string) => a.split('.').reduce((n, x) => n * 256 + Number(x), 0);
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip) || !/^\d+\.\d+\.\d+\.\d+$/.test(base) || !(Number(bits) >= 0 && Number(bits) <= 32)) return false;
  return Math.floor(toInt(ip) / size) === Math.floor(toInt(base) / size);
}

async function requireNetworkIn(ec2: EC2Client, where: EbsRegion, backupId: string, meta: EbsRestoreMetadata): Promise<void> {
  if (!where.copy) return;
  const missing: string[] = [];
  if (meta.subnetId) {
    if (!(await exists(() => ec2.send(new DescribeSubnetsCommand({ SubnetIds: [meta.subnetId as string] })), 'InvalidSubnetID.NotFound')))
      missing.push(`subnet ${meta.subnetId}`);
  } else if (meta.availabilityZone && !meta.availabilityZone.startsWith(where.region)) {
    missing.push(`availability zone ${meta.availabilityZone} (no subnet is recorded)`);
  }
  for (const g of meta.securityGroupIds)
    if (!(await exists(() => ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [g] })), 'InvalidGroup.NotFound'))) missing.push(`security group ${g}`);
  if (missing.length) {
    throw ApplicationFailure.nonRetryable(
      `backup ${backupId} cannot be restored in ${where.region}: node "${meta.node}"'s instance ${meta.instanceId} was in ` +
        `${meta.subnetId ? `subnet ${meta.subnetId}` : `availability zone ${meta.availabilityZone ?? '?'}`} with security groups ` +
        `${meta.securityGroupIds.join(', ') || '(none)'} in ${where.sourceRegion}, and ${where.region} has no ${missing.join(', no ')}. ` +
        `A restore launches into the recorded network and does not make one up: restore in ${where.sourceRegion} (without a region), ` +
        `or restore in ${where.region} once that network exists there`,
      Errors.BackupUnusable,
    );
  }
}

export function ebsRestorePlanActivities(rt: Runtime) {
  return {
    /**
     * The backup's snapshots and restore metadata, and who holds its recorded private IP now; in a
     * copy region when `region` names one (its copies, its instances), refused when that region
     * lacks the recorded subnet or security groups.
     */
    ebsRestorePlan: rt.activity(async (input: { cluster: string; backupId: string; region?: string }, call): Promise<EbsRestorePlan> => {
      const backupId = checkBackupId(input.backupId);
      const where = ebsRegion(call, input.cluster, input.region);
      return withCountedEc2In(rt, call, input.cluster, where.region, async (ec2, api) => {
        const loaded = await loadBackup(ec2, input.cluster, backupId, where);
        const snaps = loaded.snaps;
        const { meta, note } = await networkIn(ec2, where, backupId, loaded.meta);
        const holders = meta.privateIp ? await ipHolders(ec2, call, input.cluster, meta.privateIp) : { instance: null, iface: null, releasing: false };
        const states = [...new Set(snaps.map((s) => s.state))].join('/');
        const what =
          `backup ${backupId}${inRegion(where)}: ${plural(snaps.length, 'snapshot')} (${states}) of ${meta.instanceId} (node "${meta.node}", ` +
          `${meta.instanceType ?? 'unknown type'} in ${meta.subnetId ?? 'no subnet'})`;
        let ip: string;
        if (!meta.privateIp) ip = 'no private IP recorded';
        else if (holders.instance) ip = `${meta.privateIp} is held by ${holderText(holders.instance)}: it must be terminated before the restore`;
        else if (holders.iface)
          ip =
            `${meta.privateIp} is held by network interface ${holders.iface.networkInterfaceId} ` +
            `(${holders.iface.status}${holders.iface.instanceId ? `, attached to ${holders.iface.instanceId}, which is gone` : ''})`;
        else ip = `${meta.privateIp} is free`;
        return {
          backupId,
          restore: meta,
          snapshots: snaps,
          ipHeldBy: holders.instance,
          ipInterface: holders.iface,
          api: api.use,
          detail: `${what}${note ? `; launches ${note}` : ''}; ${ip}; ${apiText(api.use)}`,
        };
      });
    }),

    /** Terminate an instance and wait (heartbeating) until EC2 says "terminated"; one already gone is success. */
    ebsTerminateInstance: rt.activity(async (input: { cluster: string; instanceId: string; region?: string }, call): Promise<EbsTerminateResult> => {
      if (typeof input.instanceId !== 'string' || !/^i-[0-9a-f]+$/.test(input.instanceId)) {
        throw configError(`expected an instance id such as "i-0123456789abcdef0", got ${JSON.stringify(input.instanceId)}`);
      }
      const instanceId = input.instanceId;
      const where = ebsRegion(call, input.cluster, input.region);
      return withCountedEc2In(rt, call, input.cluster, where.region, async (ec2, api) => {
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
                  `EC2 refuses to terminate ${instanceId}: termination protection is on (disable it with ModifyInstanceAttribute ` +
                    `DisableApiTermination=false if this instance really is to go)`,
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
        const what = changed
          ? `terminated ${instanceId} (was ${before})`
          : `${instanceId} was already ${before === 'terminated' ? 'terminated' : `${before}, now terminated`}`;
        return { instanceId, terminated: true, changed, api: api.use, detail: `${what}${inRegion(where)}; ${apiText(api.use)}` };
      });
    }),
  };
}
