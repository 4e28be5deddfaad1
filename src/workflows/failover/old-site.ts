/**
 * The failover's work on the old primary's site: reach its hosts with a short bound, then take
 * it out of service as far as it can be reached (maintenance on, services stopped, PostgreSQL
 * fenced, STONITH, the EC2 instance stopped), each change recorded as an undo and each attempt
 * in what was tried, for the old-primary-dead prompt.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { SshCheck } from '../../contract/observations';
import { FAILOVER_POWER, reachOptions } from '../lib/activity-options';
import { actions, describeNode } from '../lib/runbook';
import { maintenanceOn, stopServices } from '../lib/site-steps';
import { messageOf } from '../lib/steps';
import { observeOld } from './old-primary-dead';
import type { Attempt, Ctx, LayoutNode, OldSite } from './types';
import { unfence } from './undo';

const powerActs = proxyActivities<Activities>(FAILOVER_POWER);

/** Each host of the old site checked over SSH, at once; a check that fails is an unreachable host. */
export async function reachOldSite(c: Ctx, old: LayoutNode): Promise<OldSite> {
  const { cluster, steps, layout } = c;
  // Bounded: a dead site answers "unreachable" within the bound (activity-options.ts).
  const reach = proxyActivities<Activities>(reachOptions(layout.failover.reachTimeoutSeconds));
  const hosts = [
    ...new Set([
      old.sshHost,
      ...layout.maintenance.filter((m) => m.site === old.site && m.host).map((m) => m.host as string),
      ...layout.services.filter((s) => s.site === old.site).map((s) => s.host),
    ]),
  ];
  const sshSeen = new Map<string, SshCheck>();
  await Promise.all(
    hosts.map((h) =>
      steps
        .run(
          `reach:${h}`,
          () => reach.sshCheck({ cluster, host: h }),
          (r) => (r.ok ? `reachable: ${r.detail}` : `${r.outcome}: ${r.detail}`),
        )
        .then((r) => sshSeen.set(h, r))
        .catch((err: unknown) =>
          sshSeen.set(h, {
            host: h,
            site: old.site,
            address: '',
            port: 0,
            ok: false,
            outcome: 'error',
            detail: err instanceof Error ? messageOf(err) : String(err),
          }),
        ),
    ),
  );
  return {
    reach,
    hosts,
    hostOk: (h) => h !== null && sshSeen.get(h)?.ok === true,
    seen: (h) => (sshSeen.get(h)?.ok ? 'reachable' : (sshSeen.get(h)?.detail ?? 'not tried')),
    maintenance: layout.maintenance.find((m) => m.site === old.site && m.host),
    services: layout.services.filter((s) => s.site === old.site),
  };
}

/**
 * Maintenance on, services stopped, then the old primary fenced: PostgreSQL stopped (fast, then
 * immediate) and confirmed refusing connections, and (v2) made to last: standby.signal and the
 * fence marker, boot service off. Then STONITH (v2) and the instance stop when those are set up.
 * A step that fails is recorded in `a.tried` and the next one still runs.
 */
export async function fenceOldSite(c: Ctx, a: Attempt, site: OldSite): Promise<void> {
  const { cluster, steps, layout, v2 } = c;
  const { old } = a;
  const failed = (what: string) => void a.tried.push(what);
  // Maintenance on the old site first.
  if (site.maintenance) await maintenanceOn(steps, cluster, site.maintenance, a.undo, { reachable: site.hostOk, failed });
  // Stop the old site's services.
  await stopServices(steps, cluster, site.services, a.undo, { reachable: site.hostOk, failed });
  if (site.hostOk(old.sshHost)) {
    try {
      const fence = await steps.run(
        'fence',
        () => a.fenceActs.pgFence({ cluster, node: old.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds, ...(v2 ? { mark: a.mark } : {}) }),
        (f) => f.detail,
      );
      a.fence = fence;
      a.fenced = v2 ? fence.fenced && fence.marked === true : fence.fenced;
      a.tried.push(`fence ${old.name}: ${fence.steps.join('; ')}`);
      if (v2) {
        if (fence.fenced && fence.marked !== true)
          a.tried.push(`${old.name} is stopped but its fence could not be marked: a restart would make it a primary again`);
        if (fence.marked === true || (fence.changed && fence.wasRunning))
          a.undo.push({
            what: `unfence ${old.name}`,
            run: () => unfence(c, old, a.target, fence.marked === true, fence.changed && fence.wasRunning === true),
          });
      } else if (fence.changed && fence.wasRunning)
        a.undo.push({ what: `start PostgreSQL ${old.name} again`, run: async () => (await actions.pgStart({ cluster, node: old.name })).detail });
    } catch (err) {
      a.tried.push(`fencing ${old.name} failed: ${messageOf(err as Error)}`);
    }
  } else {
    steps.skip('fence', `${old.sshHost} is unreachable over SSH: PostgreSQL cannot be stopped from here`);
  }
  // STONITH: the node's own power control, when SSH could not fence it.
  if (v2 && !a.fenced && old.stonith) {
    try {
      const p = await steps.run(
        `stonith:${old.name}`,
        () => powerActs.stonith({ cluster, node: old.name }),
        (r) => r.detail,
      );
      a.tried.push(p.detail);
      const after = await observeOld(c, a, `confirm-down:${old.name}`);
      a.fenced = p.ok && (after.state === 'down' || after.state === 'no-answer');
      a.tried.push(`after STONITH, PostgreSQL ${a.oldWhere}: ${after.seen}`);
    } catch (err) {
      a.tried.push(`STONITH of ${old.name} failed: ${messageOf(err as Error)}`);
    }
  }
  if (layout.failover.stopInstance && old.ec2) await stopInstance(c, a);
}

/** The old primary's EC2 instance stopped (v2: forced after a while); a stopped instance is checked for PostgreSQL being down. */
async function stopInstance(c: Ctx, a: Attempt): Promise<void> {
  const { cluster, steps, layout, v2 } = c;
  const { old } = a;
  try {
    const s = await steps.run(
      `stop-instance:${old.name}`,
      () => actions.ec2StopInstance({ cluster, node: old.name, ...(v2 ? { forceAfterSeconds: layout.failover.forceStopAfterSeconds } : {}) }),
      (r) => r.detail,
    );
    a.instanceStopped = s.stateAfter === 'stopped';
    a.tried.push(`EC2 instance of ${old.name}: ${s.detail}`);
  } catch (err) {
    a.tried.push(`stopping the EC2 instance of ${old.name} failed: ${messageOf(err as Error)}`);
  }
  if (!a.fenced && a.instanceStopped) {
    if (v2) {
      const after = await observeOld(c, a, `confirm-down:${old.name}`);
      a.fenced = after.state === 'down' || after.state === 'no-answer';
      a.tried.push(`after the instance stop, PostgreSQL ${a.oldWhere}: ${after.seen}`);
    } else {
      const again = await steps.run(`confirm-down:${old.name}`, () => a.reach.pgStatus({ cluster, node: old.name }), describeNode);
      a.fenced = !again.reachable;
      a.tried.push(`after the instance stop, PostgreSQL ${a.oldWhere}: ${describeNode(again)}`);
    }
  }
}
