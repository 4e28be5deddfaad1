/**
 * How the backup, drill and restore workflows call the backup activities (the BackupActivities
 * contract): long copies that heartbeat, and short calls to EC2 and the backup server.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../../contract/backup';
import type { WalArchiveActivities } from '../../contract/wal-archive';
import { BACKUP_CALL, BACKUP_COPY } from './activity-options';

/** Long copies (a base backup, a drill, a restore's copy, snapshot completion): they heartbeat while they work. */
export const copying = proxyActivities<BackupActivities>(BACKUP_COPY);

/** EC2 calls and catalog reads. */
export const calls = proxyActivities<BackupActivities>(BACKUP_CALL);

/** The WAL archive's calls on the backup server (its state, pruning). */
export const archiveCalls = proxyActivities<WalArchiveActivities>(BACKUP_CALL);
