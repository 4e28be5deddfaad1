/**
 * EBS snapshot backups: snapshot every volume of a database node's instance together (one
 * CreateSnapshots call: crash-consistent), tagged so that the tags alone say which cluster and
 * backup they belong to and what a restore needs (ebs-tags.ts); wait for them to complete; list
 * the cluster's backups; delete one. Listing and deleting also work in a copy region (ebs-copy.ts).
 *
 * Every step is check-then-act: a snapshot already carrying the backup id is found instead of made
 * again, one already deleted is fine. Every result counts its EC2 API calls and the SDK's own
 * retries (ebs-api.ts). When the SDK finally gives up, its error propagates as an ordinary
 * (retryable) error, so Temporal's activity retry carries on.
 */
import {
  CreateSnapshotsCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import {
  EBS_TAGS,
  type EbsBackupEntry,
  type EbsDeleteResult,
  type EbsDevice,
  type EbsSnapshotCreateInput,
  type EbsSnapshotCreateResult,
  type EbsSnapshotInfo,
  type EbsSnapshotWaitInput,
  type EbsSnapshotWaitResult,
} from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { heartbeat, pause } from '../activity-context';
import type { Runtime } from '../runtime';
import { awsErrorName, describeVolumes, ec2Node, findInstances, requireOneInstance, selectorText } from '../ec2';
import {
  type ApiCounter,
  apiText,
  backupSnapshots,
  describeSnapshots,
  ebsRegion,
  inRegion,
  POLL_MS,
  tagFilter,
  withCountedEc2,
  withCountedEc2In,
} from './ebs-api';
import {
  backupTags,
  byDevice,
  deviceTags,
  failedSnapshot,
  groupBackups,
  plural,
  restoreMetadata,
  setDescription,
  snapshotInfo,
  snapshotList,
  snapshotTags,
  tagList,
} from './ebs-tags';

/** When no snapshot carries the backup id, how long ebsSnapshotWait looks before it gives up (EC2's reads are eventually consistent). */
const NONE_FOUND_WAIT_MS = 30_000;

/** Delete a snapshot; one already gone is fine. */
export async function deleteSnapshot(ec2: EC2Client, snapshotId: string): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  } catch (err) {
    if (awsErrorName(err) !== 'InvalidSnapshot.NotFound') throw err;
  }
}

/**
 * Poll (heartbeating) until every snapshot of the backup in this client's region is "completed",
 * or timeoutSeconds passes (completed: false). "error" is a non-retryable SnapshotFailed; none at
 * all after a short grace (EC2's reads are eventually consistent) a non-retryable BackupNotFound.
 * `where` (" in eu-central-1") names a copy region in the texts.
 */
export async function waitSnapshots(
  ec2: EC2Client,
  api: ApiCounter,
  cluster: string,
  backupId: string,
  timeoutSeconds: number,
  where: string,
): Promise<EbsSnapshotWaitResult> {
  const started = Date.now();
  const deadline = started + Math.max(0, timeoutSeconds) * 1000;
  const noneDeadline = started + Math.min(NONE_FOUND_WAIT_MS, Math.max(0, timeoutSeconds) * 1000);
  for (;;) {
    const snaps = (await backupSnapshots(ec2, cluster, backupId)).sort(byDevice);
    const failed = snaps.find((s) => s.state === 'error');
    if (failed) throw failedSnapshot(backupId, failed, where);
    const done = snaps.filter((s) => s.state === 'completed');
    const complete = snaps.length > 0 && done.length === snaps.length;
    const now = Date.now();
    if (snaps.length === 0 && now >= noneDeadline) {
      throw ApplicationFailure.nonRetryable(
        `no EBS snapshot${where} is tagged ${EBS_TAGS.cluster}=${cluster} and ${EBS_TAGS.backupId}=${backupId}: nothing to wait for ` +
          (where ? '(was ebsSnapshotCopy run for this backup id and region?)' : '(was ebsSnapshotCreate run for this backup id?)'),
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
          ? `${plural(snaps.length, 'snapshot')} of backup ${backupId}${where} completed after ${(waitedMs / 1000).toFixed(1)} s ` +
            `(${snaps.map((s) => s.snapshotId).join(', ')}); ${apiText(api.use)}`
          : `${done.length} of ${plural(snaps.length, 'snapshot')} of backup ${backupId}${where} completed when the ${timeoutSeconds} s ` +
            `wait ended (${progress}); ${apiText(api.use)}`,
      };
    }
    heartbeat({ backupId, completed: done.length, total: snaps.length, progress: snaps.map((s) => s.progress) });
    await pause(Math.min(POLL_MS, Math.max(1, deadline - now)));
  }
}

export function ebsSnapshotActivities(rt: Runtime) {
  return {
    /**
     * Snapshot every EBS volume of the node's one live instance together: one CreateSnapshots call
     * for the instance (boot volume included), so the snapshots are crash-consistent with each
     * other. Every snapshot is tagged with the cluster, backup id, node, workflow id, creator and
     * the restore metadata (in the call), then with its own device (CreateTags: one call tags a
     * set alike). A backup whose snapshots already cover every attached volume (pending or
     * completed: a resumed run) is found, its missing device tags set, and nothing is taken; a set
     * that does not (a failed snapshot, a volume attached since) is replaced by a new set and
     * deleted. A duplicate set made by the SDK retrying a CreateSnapshots whose answer was lost is
     * deleted again.
     */
    ebsSnapshotCreate: rt.activity(async (input: EbsSnapshotCreateInput, call): Promise<EbsSnapshotCreateResult> => {
      const backupId = checkBackupId(input.backupId);
      const n = ec2Node(call, input.cluster, input.node, 'there is no instance to snapshot');
      return withCountedEc2(rt, call, input.cluster, async (ec2, api) => {
        const inst = requireOneInstance(
          input.cluster,
          input.node,
          selectorText(n.ec2),
          await findInstances(ec2, n.ec2),
          `there is nothing to snapshot (check postgres.nodes.${input.node}.ec2)`,
          'back up',
        );
        const instanceId = inst.InstanceId ?? '';
        const attached = (inst.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId).filter((v): v is string => !!v);
        if (attached.length === 0) {
          throw ApplicationFailure.nonRetryable(
            `EC2 instance ${instanceId} of node "${input.node}" has no EBS volume attached: there is nothing to snapshot`,
            Errors.Ec2NoVolumes,
          );
        }
        const meta = restoreMetadata(input.node, inst, await describeVolumes(ec2, { volumeIds: attached }));
        heartbeat({ instanceId, devices: meta.devices.length });
        const tagInput = { cluster: input.cluster, backupId, node: input.node, workflowId: input.workflowId, createdBy: input.requestedBy, meta };
        // Checked for every device before anything is made: too many tags is refused up front.
        for (const device of meta.devices) snapshotTags({ ...tagInput, device });

        const removed: string[] = [];
        const remove = async (snapshotId: string) => {
          if (removed.includes(snapshotId)) return;
          await deleteSnapshot(ec2, snapshotId);
          removed.push(snapshotId);
        };
        /** Set the device tags a snapshot lacks (CreateSnapshots tagged the set alike; a crash may have come between). */
        const tagDevices = async (pairs: { snap: EbsSnapshotInfo; device: EbsDevice }[]): Promise<EbsSnapshotInfo[]> => {
          const out: EbsSnapshotInfo[] = [];
          for (const { snap, device } of pairs) {
            const want = deviceTags(device);
            if (Object.entries(want).some(([k, v]) => snap.tags[k] !== v)) {
              await ec2.send(new CreateTagsCommand({ Resources: [snap.snapshotId], Tags: tagList(want) }));
            }
            out.push({ ...snap, device: device.device, tags: { ...snap.tags, ...want } });
          }
          return out.sort(byDevice);
        };

        const existing = (await backupSnapshots(ec2, input.cluster, backupId)).sort((a, b) => (a.startTime ?? '').localeCompare(b.startTime ?? ''));
        const good = existing.filter((s) => s.state !== 'error');
        const covered = meta.devices.map((device) => ({ device, snap: good.find((s) => s.volumeId === device.volumeId) }));
        let result: EbsSnapshotInfo[];
        let created: string[] = [];
        let found: string[] = [];
        if (good.length > 0 && covered.every((c) => c.snap)) {
          // A resumed run: this backup's set is there. Keep the first per volume; duplicates an earlier attempt left go.
          const keep = covered.map((c) => ({ device: c.device, snap: c.snap as EbsSnapshotInfo }));
          result = await tagDevices(keep);
          found = result.map((s) => s.snapshotId);
          for (const s of existing)
            if (!found.includes(s.snapshotId) && (s.state === 'error' || meta.devices.some((d) => d.volumeId === s.volumeId))) await remove(s.snapshotId);
        } else {
          const made = await ec2.send(
            new CreateSnapshotsCommand({
              InstanceSpecification: { InstanceId: instanceId, ExcludeBootVolume: false },
              Description: setDescription(backupId, input.node, instanceId, meta.devices.length, rt.now()),
              TagSpecifications: [{ ResourceType: 'snapshot', Tags: tagList(backupTags(tagInput)) }],
            }),
          );
          const set = (made.Snapshots ?? []).map((x) =>
            snapshotInfo({
              SnapshotId: x.SnapshotId,
              VolumeId: x.VolumeId,
              VolumeSize: x.VolumeSize,
              State: x.State,
              Progress: x.Progress,
              StartTime: x.StartTime,
              Description: x.Description,
              Tags: x.Tags?.length ? x.Tags : tagList(backupTags(tagInput)),
            }),
          );
          const ids = set.map((x) => x.snapshotId);
          rt.log.info('EBS snapshots created together', { cluster: input.cluster, backupId, node: input.node, instanceId, snapshotIds: ids });
          heartbeat({ instanceId, created: ids.length });
          if ((made.$metadata.attempts ?? 1) > 1) {
            // The SDK retried: an attempt whose answer was lost may have made a whole set too.
            const again = await backupSnapshots(ec2, input.cluster, backupId);
            for (const dup of again) if (!ids.includes(dup.snapshotId) && !existing.some((e) => e.snapshotId === dup.snapshotId)) await remove(dup.snapshotId);
          }
          const pairs = meta.devices.map((device) => ({ device, snap: set.find((x) => x.volumeId === device.volumeId) }));
          const strays = set.filter((x) => !meta.devices.some((d) => d.volumeId === x.volumeId));
          if (pairs.some((p) => !p.snap) || strays.length) {
            // The volumes changed between reading the instance and snapshotting it: not the set that was described.
            for (const id of ids) await remove(id);
            throw new Error(
              `the EBS volumes of ${instanceId} (node "${input.node}") changed while they were snapshotted: expected ` +
                `${meta.devices.map((d) => d.volumeId).join(', ')}, CreateSnapshots took ${set.map((x) => x.volumeId).join(', ') || 'none'}; ` +
                `the set was deleted and is taken again`,
            );
          }
          result = await tagDevices(pairs.map((p) => ({ device: p.device, snap: p.snap as EbsSnapshotInfo })));
          created = ids;
          // The earlier set (partial or with a failed snapshot) is not one consistent backup with the new one.
          for (const s of existing) await remove(s.snapshotId);
        }

        const parts: string[] = [];
        const made = result.filter((s) => created.includes(s.snapshotId));
        const old = result.filter((s) => found.includes(s.snapshotId));
        if (made.length) parts.push(`${plural(made.length, 'snapshot')} created together (${snapshotList(made)})`);
        if (old.length) parts.push(`${plural(old.length, 'snapshot')} found from an earlier attempt (${snapshotList(old)})`);
        parts[parts.length - 1] += ` of ${instanceId} (node "${input.node}")`;
        if (removed.length) parts.push(`removed ${removed.join(', ')} (failed, duplicate or of an incomplete set)`);
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
      return withCountedEc2(rt, call, input.cluster, (ec2, api) => waitSnapshots(ec2, api, input.cluster, backupId, input.timeoutSeconds, ''));
    }),

    /**
     * Every EBS backup of the cluster (snapshots tagged with it, every page), grouped by backup id,
     * newest first; in a copy region (backup.ebs.copyTo) when `region` names one: its copies.
     */
    ebsBackupsList: rt.activity(async (input: { cluster: string; region?: string }, call): Promise<EbsBackupEntry[]> => {
      const where = ebsRegion(call, input.cluster, input.region);
      return withCountedEc2In(rt, call, input.cluster, where.region, async (ec2) =>
        groupBackups(await describeSnapshots(ec2, { [EBS_TAGS.cluster]: input.cluster })),
      );
    }),

    /**
     * Delete the snapshots of exactly this cluster and backup id (already gone is fine), after
     * deregistering the image a restore registered from them (EC2 refuses to delete a snapshot an
     * image still uses).
     */
    ebsSnapshotsDelete: rt.activity(async (input: { cluster: string; backupId: string; region?: string }, call): Promise<EbsDeleteResult> => {
      const backupId = checkBackupId(input.backupId);
      const where = ebsRegion(call, input.cluster, input.region);
      return withCountedEc2In(rt, call, input.cluster, where.region, async (ec2, api) => {
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
          await deleteSnapshot(ec2, s.snapshotId);
          deleted.push(s.snapshotId);
          heartbeat({ backupId, deleted: deleted.length });
        }
        rt.log.info('EBS backup deleted', { cluster: input.cluster, backupId, region: where.region, deleted, deregisteredImages });
        const what = deleted.length
          ? `deleted ${plural(deleted.length, 'snapshot')} of backup ${backupId}${inRegion(where)} (${deleted.join(', ')})`
          : `no snapshot of backup ${backupId} left to delete${inRegion(where)}`;
        const img = deregisteredImages.length ? `; deregistered image ${deregisteredImages.join(', ')}` : '';
        return { backupId, deleted, deregisteredImages, api: api.use, detail: `${what}${img}; ${apiText(api.use)}` };
      });
    }),
  };
}
