/**
 * Copies of an EBS backup in other regions (topology `backup.ebs.copyTo`): every snapshot of the
 * backup copied from the cluster's ec2.region with CopySnapshot, tagged like its source plus the
 * source snapshot and region (so the copy region's catalog, retention and restores read copies
 * like originals), and waited for until completed.
 *
 * Check-then-act like the snapshots themselves: a copy already in the region with this backup id
 * and source snapshot is found instead of made again, a failed ("error") one replaced, duplicates
 * left by an SDK retry whose answer was lost deleted, and copies of snapshots that are no longer
 * the backup's (a set replaced since) deleted.
 */
import { CopySnapshotCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { checkBackupId } from './files';
import {
  EBS_TAGS,
  type EbsCopyWaitInput,
  type EbsCopyWaitResult,
  type EbsSnapshotCopy,
  type EbsSnapshotCopyInput,
  type EbsSnapshotCopyResult,
  type EbsSnapshotInfo,
  type Ec2ApiUse,
} from '../../contract/backup';
import { Errors } from '../../contract/errors';
import { heartbeat } from '../activity-context';
import { configError } from '../resolver';
import type { Call, Runtime } from '../runtime';
import { apiText, backupSnapshots, ebsRegion, type EbsRegion, withCountedEc2In } from './ebs-api';
import { deleteSnapshot, waitSnapshots } from './ebs-snapshot';
import { byDevice, copyDescription, copyTags, failedSnapshot, plural, tagList } from './ebs-tags';

/** The copy region asked for; the source region itself (or one not in backup.ebs.copyTo) is a ConfigError. */
function copyRegion(call: Call, cluster: string, region: unknown, what: string): EbsRegion & { copy: NonNullable<EbsRegion['copy']> } {
  const where = ebsRegion(call, cluster, region);
  if (!where.copy)
    throw configError(`${what} needs "region": one of cluster "${cluster}"'s backup.ebs.copyTo regions, not its own ec2.region ${where.sourceRegion}`);
  return where as EbsRegion & { copy: NonNullable<EbsRegion['copy']> };
}

/** The backup's snapshots in the source region, every one completed (only a completed snapshot can be copied). */
async function sourceSet(ec2: EC2Client, cluster: string, backupId: string, sourceRegion: string): Promise<EbsSnapshotInfo[]> {
  const snaps = (await backupSnapshots(ec2, cluster, backupId)).filter((s) => !s.tags[EBS_TAGS.sourceSnapshot]).sort(byDevice);
  if (snaps.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `no EBS snapshot in ${sourceRegion} is tagged ${EBS_TAGS.cluster}=${cluster} and ${EBS_TAGS.backupId}=${backupId}: there is nothing to copy`,
      Errors.BackupNotFound,
    );
  }
  const failed = snaps.find((s) => s.state === 'error');
  if (failed) throw failedSnapshot(backupId, failed);
  const pending = snaps.filter((s) => s.state !== 'completed');
  if (pending.length)
    throw new Error(
      `snapshots of backup ${backupId} in ${sourceRegion} are not completed yet (${pending.map((s) => `${s.snapshotId} ${s.state}`).join(', ')}): ` +
        'only a completed snapshot can be copied',
    );
  return snaps;
}

const sumApi = (a: Ec2ApiUse, b: Ec2ApiUse): Ec2ApiUse => ({ calls: a.calls + b.calls, retries: a.retries + b.retries });

export function ebsCopyActivities(rt: Runtime) {
  return {
    /**
     * Copy every snapshot of the backup from the cluster's ec2.region into `region` (one of
     * backup.ebs.copyTo; encrypted with its kmsKeyId when it has one). The copies are started,
     * not awaited: ebsCopyWait waits for them.
     */
    ebsSnapshotCopy: rt.activity(async (input: EbsSnapshotCopyInput, call): Promise<EbsSnapshotCopyResult> => {
      const backupId = checkBackupId(input.backupId);
      const cluster = input.cluster;
      const where = copyRegion(call, cluster, input.region, 'ebsSnapshotCopy');
      return withCountedEc2In(rt, call, cluster, where.sourceRegion, async (src, srcApi) => {
        const sources = await sourceSet(src, cluster, backupId, where.sourceRegion);
        return withCountedEc2In(rt, call, cluster, where.region, async (dst, dstApi) => {
          const existing = (await backupSnapshots(dst, cluster, backupId)).sort((a, b) => (a.startTime ?? '').localeCompare(b.startTime ?? ''));
          const removed: string[] = [];
          const remove = async (snapshotId: string) => {
            if (removed.includes(snapshotId)) return;
            await deleteSnapshot(dst, snapshotId);
            removed.push(snapshotId);
          };
          const created: string[] = [];
          const found: string[] = [];
          const copies: EbsSnapshotCopy[] = [];
          for (const s of sources) {
            const mine = existing.filter((c) => c.tags[EBS_TAGS.sourceSnapshot] === s.snapshotId);
            const good = mine.filter((c) => c.state !== 'error');
            if (good.length > 0) {
              found.push(good[0].snapshotId);
              copies.push({ sourceSnapshotId: s.snapshotId, snapshotId: good[0].snapshotId, device: s.device, state: good[0].state });
              for (const dup of good.slice(1)) await remove(dup.snapshotId);
              for (const bad of mine.filter((c) => c.state === 'error')) await remove(bad.snapshotId);
              continue;
            }
            const r = await dst.send(
              new CopySnapshotCommand({
                SourceRegion: where.sourceRegion,
                SourceSnapshotId: s.snapshotId,
                Description: copyDescription(s, backupId, where.sourceRegion),
                ...(where.copy.kmsKeyId ? { Encrypted: true, KmsKeyId: where.copy.kmsKeyId } : {}),
                TagSpecifications: [{ ResourceType: 'snapshot', Tags: tagList(copyTags(s, where.sourceRegion)) }],
              }),
            );
            const id = r.SnapshotId;
            if (!id) throw new Error(`CopySnapshot of ${s.snapshotId} into ${where.region} answered without a snapshot id`);
            created.push(id);
            copies.push({ sourceSnapshotId: s.snapshotId, snapshotId: id, device: s.device, state: 'pending' });
            rt.log.info('EBS snapshot copy started', { cluster, backupId, source: s.snapshotId, region: where.region, snapshotId: id });
            for (const bad of mine) await remove(bad.snapshotId);
            if ((r.$metadata.attempts ?? 1) > 1) {
              // The SDK retried: an attempt whose answer was lost may have started a copy too.
              const again = (await backupSnapshots(dst, cluster, backupId)).filter(
                (c) => c.tags[EBS_TAGS.sourceSnapshot] === s.snapshotId && c.snapshotId !== id,
              );
              for (const dup of again) await remove(dup.snapshotId);
            }
            heartbeat({ backupId, region: where.region, created: created.length, found: found.length });
          }
          // Copies of snapshots that are no longer the backup's (its set was taken again since) are not a copy of it.
          const sourceIds = sources.map((s) => s.snapshotId);
          for (const c of existing) if (!sourceIds.includes(c.tags[EBS_TAGS.sourceSnapshot] ?? '')) await remove(c.snapshotId);

          const api = sumApi(srcApi.use, dstApi.use);
          const list = (ids: string[]) =>
            copies
              .filter((c) => ids.includes(c.snapshotId))
              .map((c) => `${c.sourceSnapshotId} → ${c.snapshotId}${c.device ? ` (${c.device})` : ''}`)
              .join(', ');
          const parts: string[] = [];
          if (created.length) parts.push(`${plural(created.length, 'copy', 'copies')} started (${list(created)})`);
          if (found.length) parts.push(`${plural(found.length, 'copy', 'copies')} found from an earlier attempt (${list(found)})`);
          parts[parts.length - 1] +=
            ` of backup ${backupId} from ${where.sourceRegion} in ${where.region}` + (where.copy.kmsKeyId ? `, encrypted with ${where.copy.kmsKeyId}` : '');
          if (removed.length) parts.push(`removed ${removed.join(', ')} (failed, duplicate or of snapshots no longer in the backup)`);
          return {
            backupId,
            region: where.region,
            sourceRegion: where.sourceRegion,
            copies,
            created,
            found,
            api,
            detail: `${parts.join('; ')}; ${apiText(api)}`,
          };
        });
      });
    }),

    /**
     * Wait (heartbeating) until every copy of the backup in `region` is "completed" and every
     * snapshot of the backup in the source region has one; completed: false when timeoutSeconds
     * passes first or a source snapshot has no copy (ebsSnapshotCopy makes it).
     */
    ebsCopyWait: rt.activity(async (input: EbsCopyWaitInput, call): Promise<EbsCopyWaitResult> => {
      const backupId = checkBackupId(input.backupId);
      const cluster = input.cluster;
      const where = copyRegion(call, cluster, input.region, 'ebsCopyWait');
      return withCountedEc2In(rt, call, cluster, where.sourceRegion, async (src, srcApi) => {
        const sources = (await backupSnapshots(src, cluster, backupId)).filter((s) => !s.tags[EBS_TAGS.sourceSnapshot]);
        return withCountedEc2In(rt, call, cluster, where.region, async (dst, dstApi) => {
          const r = await waitSnapshots(dst, dstApi, cluster, backupId, input.timeoutSeconds, ` in ${where.region}`);
          const api = sumApi(srcApi.use, dstApi.use);
          const copied = new Set(r.snapshots.map((c) => c.tags[EBS_TAGS.sourceSnapshot]));
          const missing = sources.filter((s) => !copied.has(s.snapshotId));
          if (r.completed && (missing.length || sources.length === 0)) {
            const what = sources.length
              ? `${missing.map((s) => s.snapshotId).join(', ')} in ${where.sourceRegion} ${missing.length === 1 ? 'has' : 'have'} no copy in ${where.region}`
              : `no snapshot of backup ${backupId} is left in ${where.sourceRegion} to compare the copies with`;
            return { ...r, region: where.region, completed: false, api, detail: `the copies of backup ${backupId} are incomplete: ${what}; ${apiText(api)}` };
          }
          return { ...r, region: where.region, api, detail: r.detail.replace(/EC2 API: .*$/, apiText(api)) };
        });
      });
    }),
  };
}
