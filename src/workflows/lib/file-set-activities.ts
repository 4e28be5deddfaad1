/**
 * How the backup, restore and backup-list workflows call the file-set activities (the
 * FileSetActivities contract): archiving and restoring stream and heartbeat; the list and the plan
 * are reads.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { FileSetActivities } from '../../contract/backup-files';
import { BACKUP_CALL, BACKUP_COPY } from './activity-options';

/** fileSetBackup, fileSetRestore: a set streamed between hosts (and the store). */
export const fileSetCopying = proxyActivities<FileSetActivities>(BACKUP_COPY);

/** fileSetList, fileSetPlan: reads of the backup host, the store and the target. */
export const fileSetCalls = proxyActivities<FileSetActivities>(BACKUP_CALL);
