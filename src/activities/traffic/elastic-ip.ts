/**
 * The elastic-ip traffic driver: traffic points at the site whose database node's instance holds
 * the Elastic IP; a move associates it with the target site's instance (reassociating it away
 * from wherever it is).
 */
import { AssociateAddressCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { TrafficState } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { describeAddress, nodeInstances, nodeOfInstance, withEc2 } from '../ec2';
import { siteInstance, verified, type Driver } from './driver';

async function elasticIpState(call: Call, cluster: string, d: Driver<'elastic-ip'>, ec2: EC2Client): Promise<TrafficState> {
  const base = { driver: d.name, kind: d.kind } as const;
  const a = await describeAddress(ec2, d.publicIp);
  if (!a) return { ...base, site: null, target: null, detail: `no Elastic IP ${d.publicIp} in this account and region` };
  if (!a.InstanceId) return { ...base, site: null, target: null, detail: `${d.publicIp} is not associated with an instance` };
  const ni = nodeOfInstance(await nodeInstances(ec2, call.top.cluster(cluster)), a.InstanceId);
  const target = `${a.InstanceId} (${a.PrivateIpAddress ?? '?'})`;
  return ni
    ? { ...base, site: ni.site, target, detail: `${d.publicIp} is on ${a.InstanceId}, node "${ni.node}"` }
    : { ...base, site: null, target, detail: `${d.publicIp} is on ${a.InstanceId}, which is no database node` };
}

export function readElasticIp(rt: Runtime, call: Call, cluster: string, d: Driver<'elastic-ip'>): Promise<TrafficState> {
  return withEc2(rt, call, cluster, (ec2) => elasticIpState(call, cluster, d, ec2));
}

export function moveElasticIp(rt: Runtime, call: Call, cluster: string, d: Driver<'elastic-ip'>, site: string): Promise<TrafficState> {
  return withEc2(rt, call, cluster, async (ec2) => {
    const { instance } = await siteInstance(ec2, call, cluster, site, d.publicIp);
    const instanceId = instance.InstanceId as string;
    const a = await describeAddress(ec2, d.publicIp);
    if (!a)
      throw ApplicationFailure.nonRetryable(`no Elastic IP ${d.publicIp} in this account and region (traffic driver "${d.name}")`, Errors.Ec2AddressNotFound);
    const from = a.InstanceId ?? 'nothing';
    await ec2.send(
      new AssociateAddressCommand(
        a.AllocationId
          ? { AllocationId: a.AllocationId, InstanceId: instanceId, AllowReassociation: true }
          : { PublicIp: d.publicIp, InstanceId: instanceId, AllowReassociation: true },
      ),
    );
    heartbeat();
    return verified(await elasticIpState(call, cluster, d, ec2), site, `associated ${d.publicIp} with ${instanceId} (was on ${from})`);
  });
}
