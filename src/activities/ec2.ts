/**
 * EC2 reads through the AWS SDK: which instance stands for each database node (by the node's tag
 * or id selector) and who holds an Elastic IP. Problems with the targets are reported as data.
 * Also the EC2 lookups the traffic drivers and the EBS backups share (instances, volumes,
 * interfaces holding an address, waiting for an instance state).
 */
import {
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeVolumesCommand,
  StopInstancesCommand,
  type Address,
  type EC2Client,
  type Filter,
  type Instance,
  type InstanceNetworkInterface,
  type NetworkInterface,
  type Volume,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { ClusterConfig, DbNodeConfig, Ec2Selector } from '../topology/schema';
import { checkedInt, configError } from './resolver';
import { errorMessage, heartbeat, pause, sleep } from './activity-context';
import type { Call, Runtime } from './runtime';
import type { Ec2AddressHolder, Ec2InstanceInfo, Ec2StopResult } from '../contract/observations';
import { Errors } from '../contract/errors';

/** How long ec2StopInstance waits for "stopped", and how often it looks. */
const STOP_WAIT_MS = 120_000;
const STOP_POLL_MS = 2_000;
/** How often waitInstance looks. */
const WAIT_POLL_MS = 2_000;

/** States an instance can be in and still be "the" instance of a node (terminated ones are history). */
export const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/**
 * An EC2 client for the cluster's ec2 section, credentials resolved from their references; in
 * `region` instead of the section's own when given (same endpoint and credentials: EBS copies).
 */
export async function ec2For(rt: Runtime, call: Call, cluster: string, region?: string): Promise<EC2Client> {
  const c = call.top.cluster(cluster);
  if (!c.ec2) throw configError(`cluster "${cluster}" has no "ec2" section (region, endpoint, credentials)`);
  const creds = c.ec2.credentials
    ? {
        accessKeyId: await call.secrets.get(c.ec2.credentials.accessKeyId, `ec2.credentials.accessKeyId of cluster "${cluster}"`),
        secretAccessKey: await call.secrets.get(c.ec2.credentials.secretAccessKey, `ec2.credentials.secretAccessKey of cluster "${cluster}"`),
      }
    : undefined;
  return rt.ec2({ region: region ?? c.ec2.region, endpoint: c.ec2.endpoint, credentials: creds });
}

/** Use a client for the cluster (in `region` when given) and always release its sockets. */
export async function withEc2<T>(rt: Runtime, call: Call, cluster: string, fn: (ec2: EC2Client) => Promise<T>, region?: string): Promise<T> {
  const ec2 = await ec2For(rt, call, cluster, region);
  try {
    return await fn(ec2);
  } finally {
    ec2.destroy();
  }
}

export function selectorText(sel: Ec2Selector): string {
  return (
    sel.instanceId ??
    Object.entries(sel.tags ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',')
  );
}

/** AWS error name, e.g. "InvalidInstanceID.NotFound". */
export function awsErrorName(err: unknown): string | undefined {
  const e = err as { name?: string; Code?: string };
  return e?.Code ?? e?.name;
}

export interface NodeInstance {
  node: string;
  site: string;
  selector: string;
  /** Non-terminated instances matching the selector (exactly one is the healthy case). */
  matches: Instance[];
  /** Set when the API could not be asked. */
  error?: string;
}

/** Instances matching the filters (and ids, when given), every page. */
export async function describeInstances(ec2: EC2Client, filters: Filter[], instanceIds?: string[]): Promise<Instance[]> {
  const out: Instance[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(new DescribeInstancesCommand({ Filters: filters, InstanceIds: instanceIds, NextToken: token }));
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
    token = page.NextToken;
    heartbeat();
  } while (token);
  return out;
}

/** Instances matching one selector, every page. */
export async function findInstances(ec2: EC2Client, sel: Ec2Selector): Promise<Instance[]> {
  const filters: Filter[] = [{ Name: 'instance-state-name', Values: LIVE_STATES }];
  if (sel.tags) for (const [k, v] of Object.entries(sel.tags)) filters.push({ Name: `tag:${k}`, Values: [v] });
  try {
    return await describeInstances(ec2, filters, sel.instanceId ? [sel.instanceId] : undefined);
  } catch (err) {
    if (sel.instanceId && awsErrorName(err) === 'InvalidInstanceID.NotFound') return [];
    throw err;
  }
}

/** A database node that has an EC2 selector; a config error saying `lacking` (what cannot be done) when it has none. */
export function ec2Node(call: Call, cluster: string, node: string, lacking: string): DbNodeConfig & { ec2: Ec2Selector } {
  const n = call.top.node(cluster, node);
  if (!n.ec2) throw configError(`database node "${node}" of cluster "${cluster}" has no EC2 selector (postgres.nodes.${node}.ec2): ${lacking}`);
  return n as DbNodeConfig & { ec2: Ec2Selector };
}

/**
 * The one instance a node's selector matches; otherwise a non-retryable Ec2InstanceNotFound whose
 * message ends with `none`, or Ec2Ambiguous, refusing to guess which one to `act` on.
 */
export function requireOneInstance(cluster: string, node: string, selector: string, matches: Instance[], none: string, act: string): Instance {
  if (matches.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `no non-terminated EC2 instance matches ${selector} for node "${node}" of cluster "${cluster}": ${none}`,
      Errors.Ec2InstanceNotFound,
    );
  }
  if (matches.length > 1) {
    throw ApplicationFailure.nonRetryable(
      `${matches.length} EC2 instances match ${selector} for node "${node}" of cluster "${cluster}" ` +
        `(${matches.map((i) => i.InstanceId).join(', ')}): refusing to guess which one to ${act}`,
      Errors.Ec2Ambiguous,
    );
  }
  return matches[0];
}

/** The instance(s) of one database node, by its EC2 selector (the node must have one). */
export async function nodeInstance(ec2: EC2Client, node: string, n: DbNodeConfig): Promise<NodeInstance> {
  const sel = n.ec2 as Ec2Selector;
  const base = { node, site: n.site, selector: selectorText(sel) };
  try {
    return { ...base, matches: await findInstances(ec2, sel) };
  } catch (err) {
    return { ...base, matches: [], error: `EC2 DescribeInstances failed: ${errorMessage(err)}` };
  }
}

/** The instance(s) of every database node that has an EC2 selector. */
export async function nodeInstances(ec2: EC2Client, c: ClusterConfig): Promise<NodeInstance[]> {
  const nodes = Object.entries(c.postgres.nodes).filter(([, n]) => n.ec2);
  return Promise.all(nodes.map(([node, n]) => nodeInstance(ec2, node, n)));
}

/** An instance by id, terminated ones included while EC2 still lists them; undefined when EC2 no longer knows it. */
export async function instanceById(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  try {
    const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).find((x) => x.InstanceId === instanceId);
  } catch (err) {
    if (awsErrorName(err) === 'InvalidInstanceID.NotFound') return undefined;
    throw err;
  }
}

/** An instance's state by id, terminated ones included ("terminated" when EC2 no longer knows it). */
export async function instanceState(ec2: EC2Client, instanceId: string): Promise<string | null> {
  const i = await instanceById(ec2, instanceId);
  return i ? (i.State?.Name ?? null) : 'terminated';
}

/** Poll an instance every ~2 s until `done(state)` or the timeout; heartbeats, ends early when cancelled. Returns the last description. */
export async function waitInstance(
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
    await pause(WAIT_POLL_MS);
  }
}

/** Exactly one instance for a node, or an explanation of why not. */
export function theInstance(ni: NodeInstance): { instance: Instance } | { problem: string } {
  if (ni.error) return { problem: ni.error };
  if (ni.matches.length === 1) return { instance: ni.matches[0] };
  if (ni.matches.length === 0) return { problem: `no non-terminated instance matches ${ni.selector} for node "${ni.node}"` };
  return { problem: `${ni.matches.length} instances match ${ni.selector} for node "${ni.node}": ${ni.matches.map((i) => i.InstanceId).join(', ')}` };
}

/** The primary network interface (device index 0) of an instance. */
export function primaryInterface(i: Instance): InstanceNetworkInterface | undefined {
  return (i.NetworkInterfaces ?? []).find((n) => n.Attachment?.DeviceIndex === 0);
}

export function primaryInterfaceId(i: Instance): string | undefined {
  return primaryInterface(i)?.NetworkInterfaceId;
}

/** Whether an interface holds a private address, as its primary address or any other. */
export function holdsAddress(n: NetworkInterface, address: string): boolean {
  return (n.PrivateIpAddresses ?? []).some((p) => p.PrivateIpAddress === address) || n.PrivateIpAddress === address;
}

/** The interfaces anywhere in the account that hold a private address (by the addresses.private-ip-address filter). */
export async function interfacesHolding(ec2: EC2Client, address: string): Promise<NetworkInterface[]> {
  const r = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'addresses.private-ip-address', Values: [address] }] }));
  return (r.NetworkInterfaces ?? []).filter((n) => holdsAddress(n, address));
}

/** Which node (and site) an instance id stands for, given the resolved node instances. */
export function nodeOfInstance(nis: NodeInstance[], instanceId: string | undefined): NodeInstance | undefined {
  if (!instanceId) return undefined;
  return nis.find((ni) => ni.matches.length === 1 && ni.matches[0].InstanceId === instanceId);
}

/** The Elastic IP record for a public address, or undefined when the account has none. */
export async function describeAddress(ec2: EC2Client, publicIp: string): Promise<Address | undefined> {
  try {
    const r = await ec2.send(new DescribeAddressesCommand({ PublicIps: [publicIp] }));
    return r.Addresses?.find((a) => a.PublicIp === publicIp);
  } catch (err) {
    if (awsErrorName(err) === 'InvalidAddress.NotFound') return undefined;
    throw err;
  }
}

/** Volumes by id or by filters, every page; none asked for (an empty id list) is none found. */
export async function describeVolumes(ec2: EC2Client, query: { volumeIds?: string[]; filters?: Filter[] }): Promise<Volume[]> {
  if (query.volumeIds?.length === 0) return [];
  const out: Volume[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(new DescribeVolumesCommand({ VolumeIds: query.volumeIds, Filters: query.filters, NextToken: token }));
    out.push(...(page.Volumes ?? []));
    token = page.NextToken;
  } while (token);
  return out;
}

async function volumesOf(ec2: EC2Client, instanceId: string): Promise<Ec2InstanceInfo['volumes']> {
  const volumes = await describeVolumes(ec2, { filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }] });
  return volumes
    .map((v) => {
      const att = (v.Attachments ?? []).find((a) => a.InstanceId === instanceId);
      return { volumeId: v.VolumeId ?? '', device: att?.Device ?? '', sizeGiB: v.Size ?? null };
    })
    .sort((a, b) => a.device.localeCompare(b.device));
}

export function ec2Activities(rt: Runtime) {
  return {
    /** One entry per database node with an EC2 selector; no match or several are reported in detail. */
    ec2Instances: rt.activity(async (input: { cluster: string }, call): Promise<Ec2InstanceInfo[]> => {
      const c = call.top.cluster(input.cluster);
      return withEc2(rt, call, input.cluster, async (ec2) => {
        const nis = await nodeInstances(ec2, c);
        return Promise.all(
          nis.map(async (ni): Promise<Ec2InstanceInfo> => {
            const empty: Ec2InstanceInfo = {
              node: ni.node,
              site: ni.site,
              instanceId: null,
              state: null,
              privateIp: null,
              publicIp: null,
              instanceType: null,
              subnetId: null,
              securityGroupIds: [],
              volumes: [],
              detail: '',
            };
            const one = theInstance(ni);
            if ('problem' in one) return { ...empty, detail: one.problem };
            const i = one.instance;
            const info: Ec2InstanceInfo = {
              ...empty,
              instanceId: i.InstanceId ?? null,
              state: i.State?.Name ?? null,
              privateIp: i.PrivateIpAddress ?? null,
              publicIp: i.PublicIpAddress ?? null,
              instanceType: i.InstanceType ?? null,
              subnetId: i.SubnetId ?? null,
              securityGroupIds: (i.SecurityGroups ?? []).map((g) => g.GroupId ?? '').filter(Boolean),
              detail: `matched by ${ni.selector}`,
            };
            try {
              info.volumes = await volumesOf(ec2, i.InstanceId ?? '');
            } catch (err) {
              info.detail += `; volumes unknown: EC2 DescribeVolumes failed: ${errorMessage(err)}`;
            }
            return info;
          }),
        );
      });
    }),

    /**
     * Stop the EC2 instance of a database node (found as ec2Instances finds it) unless it is
     * stopped or stopping, and wait (heartbeating, up to ~120 s) until EC2 says "stopped".
     * No instance, or several, is a non-retryable failure; still not stopped at the end of the
     * wait is a retryable one (a retry does not stop twice: it finds "stopping" and waits).
     */
    /**
     * Stop a node's instance and wait for "stopped". With `forceAfterSeconds`, an instance still not
     * stopped that long after the stop (a hung guest sits in "stopping") gets StopInstances with
     * Force: a fence must not wait on the guest's cooperation.
     */
    ec2StopInstance: rt.activity(async (input: { cluster: string; node: string; forceAfterSeconds?: number }, call): Promise<Ec2StopResult> => {
      const n = ec2Node(call, input.cluster, input.node, 'there is no instance to stop');
      return withEc2(rt, call, input.cluster, async (ec2) => {
        const ni = await nodeInstance(ec2, input.node, n);
        if (ni.error) throw new Error(`cannot find the EC2 instance of node "${input.node}" of cluster "${input.cluster}": ${ni.error}`);
        const one = requireOneInstance(
          input.cluster,
          input.node,
          ni.selector,
          ni.matches,
          `there is no instance to stop (check postgres.nodes.${input.node}.ec2 against the instance's tags or id)`,
          'stop',
        );
        const instanceId = one.InstanceId ?? '';
        const stateBefore = one.State?.Name ?? null;
        let state: string | null = stateBefore;
        let changed = false;
        let forced = false;
        const forceAt =
          input.forceAfterSeconds !== undefined ? Date.now() + checkedInt(input.forceAfterSeconds, 'forceAfterSeconds', undefined, 1, 3600) * 1000 : null;
        const stop = async (force = false) => {
          try {
            const r = await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId], ...(force ? { Force: true } : {}) }));
            if (force) forced = true;
            changed = true;
            state = r.StoppingInstances?.find((x) => x.InstanceId === instanceId)?.CurrentState?.Name ?? state;
          } catch (err) {
            // Pending (still launching) instances cannot be stopped yet: wait and ask again.
            if (awsErrorName(err) !== 'IncorrectInstanceState') throw err;
          }
        };
        if (state === 'running' || state === 'pending') {
          await stop();
          rt.log.info('EC2 instance stop requested', { cluster: input.cluster, node: input.node, instanceId, stateBefore });
        }
        const deadline = Date.now() + STOP_WAIT_MS;
        for (;;) {
          state = await instanceState(ec2, instanceId);
          if (state === 'stopped' || state === 'terminated' || Date.now() >= deadline) break;
          // Started again meanwhile (or a stop refused while pending): ask again; StopInstances is idempotent.
          if (state === 'running' || state === 'pending') await stop();
          else if (forceAt !== null && !forced && Date.now() >= forceAt) {
            await stop(true);
            rt.log.warn('EC2 instance forced to stop', { cluster: input.cluster, node: input.node, instanceId, state });
          }
          heartbeat({ instanceId, state });
          await sleep(STOP_POLL_MS);
        }
        const base = { node: input.node, instanceId, stateBefore, stateAfter: state, changed, ...(forced ? { forced } : {}) };
        if (state === 'stopped') {
          const how = forced ? ' (a forced stop: it hung in "stopping")' : '';
          return {
            ...base,
            detail: changed
              ? `stopped ${instanceId} (was ${stateBefore ?? 'unknown'})${how}`
              : `${instanceId} was already ${stateBefore === 'stopped' ? 'stopped' : `${stateBefore}, now stopped`}${how}`,
          };
        }
        if (state === 'terminated')
          return { ...base, detail: `${instanceId} is terminated (was ${stateBefore ?? 'unknown'}): it no longer runs, but it is not "stopped"` };
        throw new Error(
          `EC2 instance ${instanceId} of node "${input.node}" is still ${state ?? 'in an unknown state'} ${STOP_WAIT_MS / 1000} s after ` +
            `${changed ? 'StopInstances' : 'the wait began'} (was ${stateBefore ?? 'unknown'})`,
        );
      });
    }),

    /** Which instance (and database node) an Elastic IP is associated with. Never throws for the API's state. */
    ec2AddressHolder: rt.activity(async (input: { cluster: string; publicIp: string }, call): Promise<Ec2AddressHolder> => {
      const c = call.top.cluster(input.cluster);
      const empty: Ec2AddressHolder = {
        publicIp: input.publicIp,
        instanceId: null,
        node: null,
        site: null,
        privateIp: null,
        associationId: null,
        allocationId: null,
        ok: false,
        detail: '',
      };
      return withEc2(rt, call, input.cluster, async (ec2) => {
        let a: Address | undefined;
        try {
          a = await describeAddress(ec2, input.publicIp);
        } catch (err) {
          return { ...empty, detail: `EC2 DescribeAddresses failed: ${errorMessage(err)}` };
        }
        if (!a) return { ...empty, ok: true, detail: `no Elastic IP ${input.publicIp} in this account and region` };
        const holder = {
          ...empty,
          ok: true,
          instanceId: a.InstanceId ?? null,
          privateIp: a.PrivateIpAddress ?? null,
          associationId: a.AssociationId ?? null,
          allocationId: a.AllocationId ?? null,
        };
        if (!a.InstanceId) return { ...holder, detail: `${input.publicIp} is not associated with an instance` };
        const ni = nodeOfInstance(await nodeInstances(ec2, c), a.InstanceId);
        return ni
          ? { ...holder, node: ni.node, site: ni.site, detail: `${input.publicIp} is on ${a.InstanceId}, node "${ni.node}" at site "${ni.site}"` }
          : { ...holder, detail: `${input.publicIp} is on ${a.InstanceId}, which is no database node of cluster "${input.cluster}"` };
      });
    }),
  };
}
