/**
 * Restoring an instance from an EBS backup: an image registered from the backup's snapshots, then
 * an instance launched from it with the recorded private address, security groups, subnet, type
 * and tags. A restore finds the instance its token made instead of launching another, and never
 * launches while something else holds the recorded address.
 *
 * Where an emulator differs from EC2 (moto: RegisterImage keeps no block device mappings or tags,
 * ClientToken is not idempotent, instance security groups given per interface show only there),
 * the code reads back what it asked for and covers the gap (launch-time mappings, the token tag,
 * the interface's groups) rather than trusting the request.
 */
import {
  CreateTagsCommand,
  DescribeImagesCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  type BlockDeviceMapping,
  type EC2Client,
  type Image,
  type Instance,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import { EBS_TAGS, type EbsDevice, type EbsRestoreInstanceInput, type EbsRestoreInstanceResult } from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { heartbeat, pause } from '../activity-context';
import { configError } from '../resolver';
import type { Runtime } from '../runtime';
import { awsErrorName, describeInstances, LIVE_STATES, waitInstance } from '../ec2';
import { apiText, ebsRegion, inRegion, POLL_MS, tagFilter, withCountedEc2In } from './ebs-api';
import { holderText, INSTANCE_WAIT_MS, ipHolders, loadBackup, networkIn } from './ebs-restore-plan';
import {
  byDevice,
  clientToken,
  clip,
  DESCRIPTION_MAX,
  deviceOf,
  failedSnapshot,
  restoredInstanceTags,
  restoreImageName,
  snapshotList,
  snapshotMapping,
  TAG_VALUE_MAX,
  TAGS_PER_RESOURCE_MAX,
  tagList,
} from './ebs-tags';

/** How long a restore waits for its image to become available. */
const IMAGE_WAIT_MS = 600_000;

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

export function ebsRestoreActivities(rt: Runtime) {
  return {
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
      // In a copy region: launched there from the backup's copies, into the recorded network (which must exist there).
      const where = ebsRegion(call, cluster, input.region);
      return withCountedEc2In(rt, call, cluster, where.region, async (ec2, api) => {
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
            `instance ${instanceId} launched from backup ${backupId} went ${state} instead of running ` +
              `(${instance?.StateReason?.Message ?? 'EC2 gave no reason'}): check the image ${imageId} and the snapshots before restoring again`,
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
        const loaded = await loadBackup(ec2, cluster, backupId, where);
        const snaps = loaded.snaps;
        // The network it launches into: in a copy region, backup.ebs.copyTo's network there (the recorded one exists only at the source).
        const { meta, note: networkNote } = await networkIn(ec2, where, backupId, loaded.meta);
        const failed = snaps.find((s) => s.state === 'error');
        if (failed) throw failedSnapshot(backupId, failed);
        const pending = snaps.filter((s) => s.state !== 'completed');
        if (pending.length)
          throw new Error(
            `snapshots of backup ${backupId} are not completed yet ` +
              `(${pending.map((s) => `${s.snapshotId} ${s.state} ${s.progress ?? ''}`.trim()).join(', ')}): an image needs completed snapshots`,
          );
        const rootDevice = meta.rootDeviceName ?? meta.devices[0]?.device ?? null;
        const usable = snaps.filter((s) => s.device);
        if (!rootDevice || !usable.some((s) => s.device === rootDevice)) {
          throw ApplicationFailure.nonRetryable(
            `backup ${backupId} has no snapshot of the root device ${rootDevice ?? '(unknown)'} of ${meta.instanceId} (it has ` +
              `${snapshotList(snaps)}): an instance cannot boot from it`,
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
              `${meta.privateIp} is still on network interface ${h.iface?.networkInterfaceId} of ${h.iface?.instanceId}, which is ` +
                `terminated: EC2 has not released it yet`,
            );
          if (h.iface) {
            throw ApplicationFailure.nonRetryable(
              `refusing to restore backup ${backupId}: its private IP ${meta.privateIp} is held by network interface ` +
                `${h.iface.networkInterfaceId} (${h.iface.status}), which no instance uses; nothing was launched. Delete the interface or ` +
                `free the address, then restore again.`,
              Errors.PrivateIpInUse,
            );
          }
        }
        heartbeat({ backupId, step: 'image' });

        // 4. The image: ours from an earlier attempt, else registered from the snapshots.
        const mappings: BlockDeviceMapping[] = usable.sort(byDevice).map((s) => snapshotMapping(s.snapshotId, deviceOf(s) as EbsDevice));
        let image = await findRestoreImage(ec2, cluster, backupId, token);
        let registered = false;
        // The image and the restored volumes say where they came from, and which restore made them.
        const originTags = {
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
          await ec2.send(new CreateTagsCommand({ Resources: [r.ImageId as string], Tags: tagList(originTags) }));
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
            `the restored instance would need ${Object.keys(instanceTags).length} tags, more than EC2's ${TAGS_PER_RESOURCE_MAX}: the ` +
              `recorded instance had too many to add ${EBS_TAGS.restoredFrom} and ${EBS_TAGS.restoreToken}`,
            Errors.RestoreMetadataTooLarge,
          );
        }
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
                { ResourceType: 'volume', Tags: tagList(originTags) },
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
          `launched ${instanceId} (${meta.instanceType} in ${meta.subnetId ?? 'the default subnet'}, ${meta.privateIp ?? 'any private IP'}, ` +
          `groups ${meta.securityGroupIds.join(',') || 'default'}) ` +
          `from ${registered ? 'new' : 'existing'} image ${imageId} of backup ` +
          `${backupId}${inRegion(where)}${launchMappings ? ' (snapshots mapped at launch: the image lists none of them)' : ''}` +
          `${networkNote ? `; ${networkNote}` : ''}`;
        return finish(instanceId, imageId, true, how);
      });
    }),
  };
}
