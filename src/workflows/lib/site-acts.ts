/**
 * Activity options for commands whose running time the topology sets: a site's afterPromote hooks
 * and `command` traffic drivers. The generic `actions` (3 minutes, 5 attempts) would cut a slow
 * hook off before its own timeout and run it again up to five times; these give each call the
 * time its command may take and only as many attempts as running it again is safe:
 *
 * - a hook without a `check` command runs at most once (nothing tells whether a cut-off run
 *   already did its work); with a check, twice (the second attempt checks first);
 * - a command driver's move three times (trafficMove reads where traffic points before it moves).
 *
 * Changing these options changes no workflow command (replays stay valid).
 */
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import { hookCheckTimeoutSeconds, type ClusterLayout } from '../../topology/layout';
import { actions, NON_RETRYABLE } from './runbook';

/** On top of the commands' own timeouts: connecting over SSH, reading back, the answer's way home. */
export const SITE_ACT_MARGIN_SECONDS = 30;
/** The remote commands heartbeat every 2 s while they run (execArgv): a dead worker shows in this. */
const HEARTBEAT = '30 seconds';

type HookLayout = Pick<ClusterLayout['hooks'][number], 'timeoutSeconds' | 'check'>;
type DriverLayout = ClusterLayout['traffic'][number];

/** runHook's options for one hook: its timeout (plus its check's) and a margin; 1 attempt, 2 with a check. */
export function hookActivityOptions(h: HookLayout): ActivityOptions {
  // `check` is absent in layouts recorded before it existed: no check.
  const check = h.check === true;
  const seconds = h.timeoutSeconds + (check ? hookCheckTimeoutSeconds(h.timeoutSeconds) : 0) + SITE_ACT_MARGIN_SECONDS;
  return {
    startToCloseTimeout: `${seconds} seconds`,
    heartbeatTimeout: HEARTBEAT,
    retry: { maximumAttempts: check ? 2 : 1, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
  };
}

/**
 * trafficMove's options for one driver: for a `command` driver its read, move and read back
 * (each up to timeoutSeconds) and a margin, 3 attempts; null for other kinds (they use `actions`).
 */
export function trafficActivityOptions(d: DriverLayout): ActivityOptions | null {
  // timeoutSeconds is absent in layouts recorded before it existed: those keep `actions`.
  if (d.kind !== 'command' || typeof d.timeoutSeconds !== 'number') return null;
  return {
    startToCloseTimeout: `${3 * d.timeoutSeconds + SITE_ACT_MARGIN_SECONDS} seconds`,
    heartbeatTimeout: HEARTBEAT,
    retry: { maximumAttempts: 3, initialInterval: '2 seconds', maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE },
  };
}

/** Activities to call `runHook` for this hook of the layout with: `hookActs(h).runHook({ cluster, site, hook: h.name })`. */
export function hookActs(h: HookLayout) {
  return proxyActivities<Activities>(hookActivityOptions(h));
}

/** Activities to call `trafficMove` for this driver of the layout with: `trafficActs(d).trafficMove({ cluster, driver: d.name, site })`. */
export function trafficActs(d: DriverLayout) {
  const options = trafficActivityOptions(d);
  return options ? proxyActivities<Activities>(options) : actions;
}
