/**
 * How the backup, drill and restore workflows call the backup activities (the BackupActivities
 * contract): long copies that heartbeat, and short calls to EC2 and the backup server.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../../contract/backup';
import { NON_RETRYABLE } from './runbook';

/** Failures a retry cannot fix: a missing or corrupt backup, a refused precondition, a failed snapshot. */
export const BACKUP_NON_RETRYABLE = [
  ...NON_RETRYABLE,
  'BackupNotFound',
  'BackupCorrupt',
  'BackupUnsupported',
  'BackupUnusable',
  'SnapshotFailed',
  'Ec2InstanceNotFound',
  'PostgresRunning',
  'PrivateIpInUse',
  'PgVersionMismatch',
  'RestoreNotStaged',
];

/** Long copies (a base backup, a drill, a restore's copy, snapshot completion): they heartbeat while they work. */
export const copying = proxyActivities<BackupActivities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '5 seconds', maximumInterval: '2 minutes', nonRetryableErrorTypes: BACKUP_NON_RETRYABLE },
});

/** EC2 calls and catalog reads: the SDK retries throttling and 5xx itself; these retry the rest. */
export const calls = proxyActivities<BackupActivities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 8, initialInterval: '2 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: BACKUP_NON_RETRYABLE },
});
