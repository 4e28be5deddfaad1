/**
 * How the backup, drill and restore workflows call the backup activities (the BackupActivities
 * contract): long copies that heartbeat, and short calls to EC2 and the backup server.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../../contract/backup';
import { NON_RETRYABLE } from './runbook';

/** Long copies (a base backup, a drill, a restore's copy, snapshot completion): they heartbeat while they work. */
export const copying = proxyActivities<BackupActivities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '5 seconds', maximumInterval: '2 minutes', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** EC2 calls and catalog reads: the SDK retries throttling and 5xx itself; these retry the rest. */
export const calls = proxyActivities<BackupActivities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 8, initialInterval: '2 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});
