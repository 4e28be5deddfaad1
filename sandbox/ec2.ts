/**
 * Seeding moto (the sandbox's EC2): a VPC, a subnet per site, a security group, an image, one
 * instance per database node with a fixed private IP and a tagged root volume, and an Elastic IP
 * and a secondary private IP on the preferred primary's instance. Idempotent: every resource is
 * looked up by its tags or name before it is made, so `up` against a running moto changes
 * nothing, and against a restarted (empty) moto rebuilds the same layout with the same addresses.
 */
import { readFileSync } from 'node:fs';
import type { EC2Client as Ec2ClientType, Tag } from '@aws-sdk/client-ec2';
import { EC2_REGION, ELASTIC_IP, PORTS, siteOctet, type Layout } from './layout';

export interface Ec2Seed {
  imageId: string;
  vpcId: string;
  instances: Record<string, { instanceId: string; privateIp: string }>;
  publicIp: string;
  allocationId: string;
  /** The secondary private IP of the "vip" traffic driver (PRIVATE_VIP). */
  privateVip: string;
  /** What this call made (empty when everything was there already). */
  created: string[];
}

export function ec2Endpoint(l: Layout): string {
  return `http://${l.shared}:${PORTS.ec2}`;
}

export function privateIpOf(site: 'dc1' | 'dc2'): string {
  return `10.0.${siteOctet(site)}.10`;
}

/**
 * The secondary private IP the "private-ip" traffic driver "vip" moves between the database
 * instances' primary network interfaces (data only, like every 10.x address here: never dialled).
 * It lies in dc1's subnet (10.0.1.0/24). Real EC2 only assigns a secondary address that lies in
 * the interface's own subnet, so there it could never move to dc2-db (10.0.2.0/24, another
 * availability zone); moto 5.2 checks neither that nor whether another interface already holds
 * the address, so the sandbox can exercise the driver across sites. See sandbox/README.md.
 */
export const PRIVATE_VIP = '10.0.1.100';

export async function ec2Client(l: Layout): Promise<Ec2ClientType> {
  const { EC2Client } = await import('@aws-sdk/client-ec2');
  return new EC2Client({
    region: EC2_REGION,
    endpoint: ec2Endpoint(l),
    credentials: {
      accessKeyId: readFileSync(l.secrets.awsAccessKeyId, 'utf8').trim(),
      secretAccessKey: readFileSync(l.secrets.awsSecretAccessKey, 'utf8').trim(),
    },
    maxAttempts: 3,
  });
}

export async function seedEc2(l: Layout): Promise<Ec2Seed> {
  const sdk = await import('@aws-sdk/client-ec2');
  const c = await ec2Client(l);
  try {
    const cluster = l.cluster;
    const created: string[] = [];
    const tags = (extra: Record<string, string>): Tag[] => Object.entries({ 'switchyard:cluster': cluster, ...extra }).map(([Key, Value]) => ({ Key, Value }));
    const byTag = (k: string, v: string) => ({ Name: `tag:${k}`, Values: [v] });

    // Image (default AMIs are not loaded: MOTO_EC2_LOAD_DEFAULT_AMIS=false).
    const imageName = `${cluster}-sandbox-base`;
    let imageId = (await c.send(new sdk.DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [imageName] }] }))).Images?.[0]?.ImageId;
    if (!imageId) {
      imageId = (
        await c.send(
          new sdk.RegisterImageCommand({
            Name: imageName,
            Description: 'switchyard sandbox: the image the database hosts were launched from',
            Architecture: 'x86_64',
            RootDeviceName: '/dev/sda1',
            VirtualizationType: 'hvm',
          }),
        )
      ).ImageId!;
      await c.send(new sdk.CreateTagsCommand({ Resources: [imageId], Tags: tags({ Name: imageName }) }));
      created.push(`image ${imageId}`);
    }

    // Network.
    let vpcId = (await c.send(new sdk.DescribeVpcsCommand({ Filters: [byTag('switchyard:cluster', cluster)] }))).Vpcs?.[0]?.VpcId;
    if (!vpcId) {
      vpcId = (
        await c.send(
          new sdk.CreateVpcCommand({ CidrBlock: '10.0.0.0/16', TagSpecifications: [{ ResourceType: 'vpc', Tags: tags({ Name: `${cluster}-vpc` }) }] }),
        )
      ).Vpc!.VpcId!;
      created.push(`vpc ${vpcId}`);
    }
    const subnets: Record<string, string> = {};
    for (const db of l.dbs) {
      const found = (await c.send(new sdk.DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }, byTag('switchyard:site', db.site)] })))
        .Subnets?.[0]?.SubnetId;
      if (found) {
        subnets[db.site] = found;
        continue;
      }
      subnets[db.site] = (
        await c.send(
          new sdk.CreateSubnetCommand({
            VpcId: vpcId,
            CidrBlock: `10.0.${siteOctet(db.site)}.0/24`,
            AvailabilityZone: db.site === 'dc1' ? `${EC2_REGION}a` : `${EC2_REGION}b`,
            TagSpecifications: [{ ResourceType: 'subnet', Tags: tags({ Name: `${cluster}-${db.site}`, 'switchyard:site': db.site }) }],
          }),
        )
      ).Subnet!.SubnetId!;
      created.push(`subnet ${subnets[db.site]}`);
    }
    const sgName = `${cluster}-db`;
    let sgId = (
      await c.send(
        new sdk.DescribeSecurityGroupsCommand({
          Filters: [
            { Name: 'vpc-id', Values: [vpcId] },
            { Name: 'group-name', Values: [sgName] },
          ],
        }),
      )
    ).SecurityGroups?.[0]?.GroupId;
    if (!sgId) {
      sgId = (
        await c.send(
          new sdk.CreateSecurityGroupCommand({
            GroupName: sgName,
            Description: 'switchyard sandbox database hosts',
            VpcId: vpcId,
            TagSpecifications: [{ ResourceType: 'security-group', Tags: tags({ Name: sgName }) }],
          }),
        )
      ).GroupId!;
      await c.send(
        new sdk.AuthorizeSecurityGroupIngressCommand({
          GroupId: sgId,
          IpPermissions: [
            { IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432, IpRanges: [{ CidrIp: '10.0.0.0/16', Description: 'postgres and replication' }] },
            { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: '10.0.0.0/16', Description: 'ssh' }] },
          ],
        }),
      );
      created.push(`security group ${sgId}`);
    }

    // One instance per database node.
    const instances: Ec2Seed['instances'] = {};
    for (const db of l.dbs) {
      const live = (
        await c.send(
          new sdk.DescribeInstancesCommand({
            Filters: [
              byTag('switchyard:cluster', cluster),
              byTag('switchyard:node', db.node),
              { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
            ],
          }),
        )
      ).Reservations?.flatMap((r) => r.Instances ?? [])[0];
      if (live) {
        instances[db.node] = { instanceId: live.InstanceId!, privateIp: live.PrivateIpAddress ?? privateIpOf(db.site) };
        continue;
      }
      const t = tags({ Name: db.node, 'switchyard:node': db.node, 'switchyard:site': db.site });
      const made = await c.send(
        new sdk.RunInstancesCommand({
          ImageId: imageId,
          MinCount: 1,
          MaxCount: 1,
          InstanceType: 't3.medium',
          // The primary interface as EC2 makes it by default: deleted with the instance, so the
          // address is free again once the instance is gone (moto keeps an interface given as
          // SubnetId + PrivateIpAddress after termination, holding the address).
          NetworkInterfaces: [
            { DeviceIndex: 0, SubnetId: subnets[db.site], PrivateIpAddress: privateIpOf(db.site), Groups: [sgId], DeleteOnTermination: true },
          ],
          BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 30, VolumeType: 'gp3', DeleteOnTermination: true } }],
          TagSpecifications: [
            { ResourceType: 'instance', Tags: t },
            { ResourceType: 'volume', Tags: t },
          ],
        }),
      );
      const inst = made.Instances![0];
      instances[db.node] = { instanceId: inst.InstanceId!, privateIp: inst.PrivateIpAddress ?? privateIpOf(db.site) };
      created.push(`instance ${inst.InstanceId} (${db.node})`);
    }

    // The Elastic IP, on the preferred primary (dc1) when first made; left where it is afterwards.
    const existing = (await c.send(new sdk.DescribeAddressesCommand({ Filters: [{ Name: 'public-ip', Values: [ELASTIC_IP] }] }))).Addresses?.[0];
    let allocationId = existing?.AllocationId;
    if (!allocationId) {
      allocationId = (
        await c.send(
          new sdk.AllocateAddressCommand({
            Domain: 'vpc',
            Address: ELASTIC_IP,
            TagSpecifications: [{ ResourceType: 'elastic-ip', Tags: tags({ Name: `${cluster}-eip` }) }],
          }),
        )
      ).AllocationId!;
      created.push(`elastic IP ${ELASTIC_IP}`);
    }
    if (!existing?.InstanceId && !existing?.NetworkInterfaceId) {
      await c.send(new sdk.AssociateAddressCommand({ AllocationId: allocationId, InstanceId: instances[l.dbs[0].node].instanceId }));
      created.push(`association of ${ELASTIC_IP} with ${l.dbs[0].node}`);
    }

    // The secondary private IP, on the preferred primary's primary interface (device index 0) when
    // no interface of the instances holds it; left where it is afterwards (a runbook moved it).
    const enis =
      (
        await c.send(
          new sdk.DescribeNetworkInterfacesCommand({
            Filters: [{ Name: 'attachment.instance-id', Values: Object.values(instances).map((i) => i.instanceId) }],
          }),
        )
      ).NetworkInterfaces ?? [];
    // Not the 'addresses.private-ip-address' filter: moto matches it against primary addresses only.
    const holdsVip = enis.some((n) => (n.PrivateIpAddresses ?? []).some((p) => p.PrivateIpAddress === PRIVATE_VIP));
    if (!holdsVip) {
      const first = instances[l.dbs[0].node].instanceId;
      const eni = enis.find((n) => n.Attachment?.InstanceId === first && n.Attachment?.DeviceIndex === 0)?.NetworkInterfaceId;
      if (!eni) throw new Error(`instance ${first} (${l.dbs[0].node}) has no primary network interface to put ${PRIVATE_VIP} on`);
      await c.send(new sdk.AssignPrivateIpAddressesCommand({ NetworkInterfaceId: eni, PrivateIpAddresses: [PRIVATE_VIP] }));
      created.push(`secondary private IP ${PRIVATE_VIP} on ${eni} of ${l.dbs[0].node}`);
    }

    return { imageId, vpcId, instances, publicIp: ELASTIC_IP, allocationId, privateVip: PRIVATE_VIP, created };
  } finally {
    c.destroy();
  }
}
