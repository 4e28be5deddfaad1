/**
 * The private-ip traffic driver: traffic points at the site whose database node's instance holds
 * a secondary private IP on one of its interfaces; a move assigns it to the target instance's
 * primary interface and takes it off every other.
 */
import {
  AssignPrivateIpAddressesCommand,
  DescribeNetworkInterfacesCommand,
  UnassignPrivateIpAddressesCommand,
  type EC2Client,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import type { TrafficState } from '../../contract/observations';
import { heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { holdsAddress, interfacesHolding, nodeInstances, nodeOfInstance, primaryInterfaceId, withEc2, type NodeInstance } from '../ec2';
import { siteInstance, verified, type Driver } from './driver';

interface Holder {
  eni: string;
  instanceId: string | null;
}

/**
 * Every interface holding `address`: the AWS filter finds holders anywhere in the account, and
 * the cluster's own instances' interfaces are also checked one by one, because emulators (moto)
 * match that filter against primary addresses only.
 */
async function privateIpHolders(ec2: EC2Client, address: string, nis: NodeInstance[]): Promise<Holder[]> {
  const found = new Map<string, Holder>();
  const add = (list: NetworkInterface[] | undefined) => {
    for (const n of list ?? [])
      if (n.NetworkInterfaceId && holdsAddress(n, address))
        found.set(n.NetworkInterfaceId, { eni: n.NetworkInterfaceId, instanceId: n.Attachment?.InstanceId ?? null });
  };
  add(await interfacesHolding(ec2, address));
  const ids = nis.flatMap((ni) => ni.matches.map((i) => i.InstanceId ?? '')).filter(Boolean);
  if (ids.length) add((await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: ids }] }))).NetworkInterfaces);
  return [...found.values()].sort((a, b) => a.eni.localeCompare(b.eni));
}

function privateIpState(d: Driver<'private-ip'>, holders: Holder[], nis: NodeInstance[]): TrafficState {
  const base = { driver: d.name, kind: d.kind } as const;
  const desc = (h: Holder) => `${h.eni}${h.instanceId ? ` on ${h.instanceId}` : ' (unattached)'}`;
  if (holders.length === 0) return { ...base, site: null, target: null, detail: `no network interface holds ${d.address}` };
  if (holders.length > 1)
    return { ...base, site: null, target: null, detail: `${holders.length} interfaces hold ${d.address}: ${holders.map(desc).join(', ')}` };
  const h = holders[0];
  const ni = nodeOfInstance(nis, h.instanceId ?? undefined);
  const target = `${h.instanceId ?? h.eni} (${d.address})`;
  return ni
    ? { ...base, site: ni.site, target, detail: `${d.address} is on ${desc(h)}, node "${ni.node}"` }
    : { ...base, site: null, target, detail: `${d.address} is on ${desc(h)}, which is no database node` };
}

export function readPrivateIp(rt: Runtime, call: Call, cluster: string, d: Driver<'private-ip'>): Promise<TrafficState> {
  return withEc2(rt, call, cluster, async (ec2) => {
    const nis = await nodeInstances(ec2, call.top.cluster(cluster));
    return privateIpState(d, await privateIpHolders(ec2, d.address, nis), nis);
  });
}

export function movePrivateIp(rt: Runtime, call: Call, cluster: string, d: Driver<'private-ip'>, site: string): Promise<TrafficState> {
  return withEc2(rt, call, cluster, async (ec2) => {
    const { node, nis, instance } = await siteInstance(ec2, call, cluster, site, d.address);
    const eni = primaryInterfaceId(instance);
    if (!eni) throw new Error(`instance ${instance.InstanceId} of node "${node}" has no primary network interface`);
    const before = await privateIpHolders(ec2, d.address, nis);
    await ec2.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: eni, PrivateIpAddresses: [d.address], AllowReassignment: true }));
    heartbeat();
    // AWS moves the address on reassignment; emulators may leave it on both. Unassign from
    // whoever still holds it besides the new interface.
    const stale = (await privateIpHolders(ec2, d.address, nis)).filter((h) => h.eni !== eni);
    for (const h of stale) await ec2.send(new UnassignPrivateIpAddressesCommand({ NetworkInterfaceId: h.eni, PrivateIpAddresses: [d.address] }));
    const from = before.filter((h) => h.eni !== eni).map((h) => h.eni);
    const unassigned = stale.length ? `, unassigned from ${stale.map((h) => h.eni).join(', ')}` : '';
    const did = `assigned ${d.address} to ${eni} of ${instance.InstanceId}${from.length ? ` (was on ${from.join(', ')}${unassigned})` : ''}`;
    return verified(privateIpState(d, await privateIpHolders(ec2, d.address, nis), nis), site, did);
  });
}
