/**
 * Activities for commands whose running time the topology sets: a site's afterPromote hooks and
 * `command` traffic drivers (their options: activity-options.ts). The generic `actions` (3 minutes, 5 attempts) would cut a slow
 * hook off before its own timeout and run it again up to five times; these give each call the
 * time its command may take and only as many attempts as running it again is safe:
 *
 * - a hook without a `check` command runs at most once (nothing tells whether a cut-off run
 *   already did its work); with a check, twice (the second attempt checks first);
 * - a command driver's move three times (trafficMove reads where traffic points before it moves).
 *
 * Changing these options changes no workflow command (replays stay valid).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { ClusterLayout } from '../../topology/layout';
import { hookActivityOptions, trafficActivityOptions } from './activity-options';
import { actions } from './runbook';

type HookLayout = Pick<ClusterLayout['hooks'][number], 'timeoutSeconds' | 'check'>;
type DriverLayout = ClusterLayout['traffic'][number];

/** Activities to call `runHook` for this hook of the layout with: `hookActs(h).runHook({ cluster, site, hook: h.name })`. */
export function hookActs(h: HookLayout) {
  return proxyActivities<Activities>(hookActivityOptions(h));
}

/** Activities to call `trafficMove` for this driver of the layout with: `trafficActs(d).trafficMove({ cluster, driver: d.name, site })`. */
export function trafficActs(d: DriverLayout) {
  const options = trafficActivityOptions(d);
  return options ? proxyActivities<Activities>(options) : actions;
}
