/**
 * EBS snapshot backups: snapshot every volume of a database node's instance, tagged so that the
 * tags alone say which cluster and backup they belong to and what a restore needs (ebs-tags.ts);
 * wait for them to complete; list the cluster's backups; delete one.
 *
 * Every step is check-then-act: a snapshot already carrying the backup id is found instead of made
 * again, one already deleted is fine. Every result counts its EC2 API calls and the SDK's own
 * retries (ebs-api.ts). When the SDK finally gives up, its error propagates as an ordinary
 * (retryable) error, so Temporal's activity retry carries on.
 */
import { CreateSnapshotCommand, DeleteSnapshotCommand, DeregisterImageCommand, DescribeImagesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import {
  EBS_TAGS,
  type EbsBackupEntry,
  type EbsDeleteResult,
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
import { apiText, backupSnapshots, describeSnapshots, POLL_MS, tagFilter, withCountedEc2 } from './ebs-api';
import {
  byDevice,
  failedSnapshot,
  groupBackups,
  plural,
  restoreMetadata,
  snapshotDescription,
  snapshotInfo,
  snapshotList,
  snapshotTags,
  tagList,
} from './ebs-tags';

/** When no snapshot carries the backup id, how long ebsSnapshotWait looks before it gives up (EC2's reads are eventually consistent). */
const NONE_FOUND_WAIT_MS = 30_000;

/** Delete a snapshot; one already gone is fine. */
async function deleteSnapshot(ec2: EC2Client, snapshotId: string): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  } catch (err) {
    if (awsErrorName(err) !== 'InvalidSnapshot.NotFound') throw err;
  }
}

export function ebsSnapshotActivities(rt: Runtime) {
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

        const existing = await backupSnapshots(ec2, input.cluster, backupId);
        const created: string[] = [];
        const found: string[] = [];
        const removed: string[] = [];
        const result: EbsSnapshotInfo[] = [];
        const remove = async (snapshotId: string) => {
          await deleteSnapshot(ec2, snapshotId);
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
        if (made.length) parts.push(`${plural(made.length, 'snapshot')} created (${snapshotList(made)})`);
        if (old.length) parts.push(`${plural(old.length, 'snapshot')} found from an earlier attempt (${snapshotList(old)})`);
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
              `no EBS snapshot is tagged ${EBS_TAGS.cluster}=${input.cluster} and ${EBS_TAGS.backupId}=${backupId}: nothing to wait for ` +
                `(was ebsSnapshotCreate run for this backup id?)`,
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
                ? `${plural(snaps.length, 'snapshot')} of backup ${backupId} completed after ${(waitedMs / 1000).toFixed(1)} s ` +
                  `(${snaps.map((s) => s.snapshotId).join(', ')}); ${apiText(api.use)}`
                : `${done.length} of ${plural(snaps.length, 'snapshot')} of backup ${backupId} completed when the ${input.timeoutSeconds} s ` +
                  `wait ended (${progress}); ${apiText(api.use)}`,
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
          await deleteSnapshot(ec2, s.snapshotId);
          deleted.push(s.snapshotId);
          heartbeat({ backupId, deleted: deleted.length });
        }
        rt.log.info('EBS backup deleted', { cluster: input.cluster, backupId, deleted, deregisteredImages });
        const what = deleted.length
          ? `deleted ${plural(deleted.length, 'snapshot')} of backup ${backupId} (${deleted.join(', ')})`
          : `no snapshot of backup ${backupId} left to delete`;
        const img = deregisteredImages.length ? `; deregistered image ${deregisteredImages.join(', ')}` : '';
        return { backupId, deleted, deregisteredImages, api: api.use, detail: `${what}${img}; ${apiText(api.use)}` };
      });
    }),
  };
}
