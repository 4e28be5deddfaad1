/**
 * Every activity's timeouts and retries, in one place: the fixed sets by what the call does, and
 * functions for the bounds that come from the topology. Workflows make their proxies from these.
 * No retry list is written by hand: NON_RETRYABLE comes from the failure-type table.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import { Errors, NON_RETRYABLE_ERRORS } from '../../contract/errors';
import { hookCheckTimeoutSeconds } from '../../topology/hook-timeouts';
import type { ClusterLayout } from '../../topology/layout';

/** Failures no retry can fix (src/contract/errors.ts): every retry policy's non-retryable list. */
export const NON_RETRYABLE: string[] = [...NON_RETRYABLE_ERRORS];

/** Status reads: they report an unreachable node as data and only throw on surprises. */
export const READ: ActivityOptions = {
  startToCloseTimeout: '45 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Readiness's reads: a configuration error is the only failure not worth a second look. */
export const READINESS_READ: ActivityOptions = {
  startToCloseTimeout: '45 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second', nonRetryableErrorTypes: [Errors.ConfigError] },
};
/** The watch's probe: not retried (the next probe, a few seconds later, is the retry). */
export const WATCH_PROBE: ActivityOptions = {
  startToCloseTimeout: '40 seconds',
  retry: { maximumAttempts: 1 },
};
/** Readiness's backup catalog reads. */
export const READINESS_BACKUP_READ: ActivityOptions = {
  startToCloseTimeout: '45 seconds',
  retry: { maximumAttempts: 2, initialInterval: '1 second', nonRetryableErrorTypes: [Errors.ConfigError] },
};
/** Changes to a host or a service (check-then-act, so a retry is safe). */
export const ACTION: ActivityOptions = {
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 5, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Promotion: retried longer, a lost answer is found out by reading the node again. */
export const PROMOTION: ActivityOptions = {
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 10, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** A notification: never the reason a run fails. */
export const NOTIFY: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
};
/** The cluster lock's updates. */
export const LOCK: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Rejoin's copy: a base backup of a large database takes long; it heartbeats while it copies. */
export const REJOIN_COPY: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 3, initialInterval: '5 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Switchover's waits (replay, streaming): long, heartbeating. */
export const SWITCHOVER_WAIT: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Backups' long copies (a base backup, a drill, a restore's copy, snapshot completion): they heartbeat while they work. */
export const BACKUP_COPY: ActivityOptions = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 5, initialInterval: '5 seconds', maximumInterval: '2 minutes', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** Backups' EC2 calls and catalog reads: the SDK retries throttling and 5xx itself; these retry the rest. */
export const BACKUP_CALL: ActivityOptions = {
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 8, initialInterval: '2 seconds', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** The guard's reads of the nodes it watches, every round. */
export const GUARD_READ: ActivityOptions = {
  startToCloseTimeout: '45 seconds',
  retry: { maximumAttempts: 2, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** The guard fencing a node again. */
export const GUARD_FENCE: ActivityOptions = {
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 2, initialInterval: '2 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
};
/** The guard's power-off: once per round, the next round sees whether it worked. */
export const GUARD_POWER: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 1 },
};
/** A failover's power-off: twice at most (powering off twice is harmless); whether it worked is seen by checking the node afterwards. */
export const FAILOVER_POWER: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 2, initialInterval: '2 seconds' },
};
/** A failover telling the guard what to watch. */
export const GUARD_SIGNAL: ActivityOptions = { startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 5, initialInterval: '1 second' } };

/**
 * A failover's reads of the old site: bounded, so a dead site answers "unreachable" within the
 * bound; a second attempt only for one lost with its worker (a crash mid-check must not read as
 * "unreachable").
 */
export function reachOptions(reachTimeoutSeconds: number): ActivityOptions {
  return { startToCloseTimeout: `${reachTimeoutSeconds + 10} seconds`, retry: { maximumAttempts: 2, initialInterval: '1 second' } };
}

/** A failover's fence: the fast stop's bound and two minutes for the rest. */
export function fenceOptions(fastStopTimeoutSeconds: number): ActivityOptions {
  return {
    startToCloseTimeout: `${fastStopTimeoutSeconds + 120} seconds`,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 2, initialInterval: '2 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
  };
}

/** A switchover's own write probes: as long as the replay may take, and ten minutes more. */
export function writeProbeOptions(replayTimeoutSeconds: number): ActivityOptions {
  return { startToCloseTimeout: `${replayTimeoutSeconds + 600} seconds`, heartbeatTimeout: '10 seconds', retry: { maximumAttempts: 2 } };
}

/** On top of the commands' own timeouts: connecting over SSH, reading back, the answer's way home. */
export const SITE_ACT_MARGIN_SECONDS = 30;
/** The remote commands heartbeat every 2 s while they run (execArgv): a dead worker shows in this. */
const SITE_ACT_HEARTBEAT = '30 seconds';

type HookLayout = Pick<ClusterLayout['hooks'][number], 'timeoutSeconds' | 'check'>;
type DriverLayout = ClusterLayout['traffic'][number];

/** runHook's options for one hook: its timeout (plus its check's) and a margin; 1 attempt, 2 with a check. */
export function hookActivityOptions(h: HookLayout): ActivityOptions {
  // `check` is absent in layouts recorded before it existed: no check.
  const check = h.check === true;
  const seconds = h.timeoutSeconds + (check ? hookCheckTimeoutSeconds(h.timeoutSeconds) : 0) + SITE_ACT_MARGIN_SECONDS;
  return {
    startToCloseTimeout: `${seconds} seconds`,
    heartbeatTimeout: SITE_ACT_HEARTBEAT,
    retry: { maximumAttempts: check ? 2 : 1, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
  };
}

/**
 * trafficMove's options for one driver: for a `command` driver its read, move and read back
 * (each up to timeoutSeconds) and a margin, 3 attempts; null for other kinds (they use ACTION).
 */
export function trafficActivityOptions(d: DriverLayout): ActivityOptions | null {
  // timeoutSeconds is absent in layouts recorded before it existed: those keep ACTION.
  if (d.kind !== 'command' || typeof d.timeoutSeconds !== 'number') return null;
  return {
    startToCloseTimeout: `${3 * d.timeoutSeconds + SITE_ACT_MARGIN_SECONDS} seconds`,
    heartbeatTimeout: SITE_ACT_HEARTBEAT,
    retry: { maximumAttempts: 3, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
  };
}
