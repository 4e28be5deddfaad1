/**
 * A failover's dry run: what a real run would do, step by step, from read-only observations
 * (the preflight, the old site's SSH checks, where each traffic driver points). Changes nothing.
 */
import type { PgNodeStatus } from '../../contract/observations';
import type { PlanStep } from '../../contract/messages';
import { lsnMax, lsnMinus } from '../../contract/lsn';
import { describeNode, reads } from '../lib/runbook';
import { failoverResult } from './result';
import type { Ctx, FailoverResult, LayoutNode, NewSite, OldSite } from './types';

export interface PlanInput {
  old: LayoutNode;
  target: LayoutNode;
  oldStatus: PgNodeStatus;
  targetStatus: PgNodeStatus;
  oldSite: OldSite;
  newSite: NewSite;
  timelineBefore: number | null;
}

export async function planOnly(c: Ctx, p: PlanInput): Promise<FailoverResult> {
  const { cluster, steps, layout } = c;
  const { old, target, oldSite, newSite } = p;
  const plan: PlanStep[] = [{ step: 'lock', target: cluster, action: 'take the cluster lock (refused if another operation runs)' }];
  const unreachable = (h: string) => `skip: ${h} is unreachable now`;
  if (oldSite.maintenance)
    plan.push({
      step: `maintenance-on:${old.site}`,
      target: oldSite.maintenance.host ?? old.site,
      action: oldSite.hostOk(oldSite.maintenance.host) ? 'turn maintenance on' : unreachable(oldSite.maintenance.host ?? '?'),
    });
  for (const s of oldSite.services)
    plan.push({ step: `service-stop:${s.site}/${s.service}`, target: s.host, action: oldSite.hostOk(s.host) ? 'stop the service' : unreachable(s.host) });
  const canFence = oldSite.hostOk(old.sshHost);
  plan.push({
    step: 'fence',
    target: old.name,
    action: canFence
      ? `pg_ctl stop -m fast (${layout.failover.fastStopTimeoutSeconds} s), then -m immediate; ` +
        `confirm it refuses connections (now: ${describeNode(p.oldStatus)})`
      : unreachable(old.sshHost),
  });
  if (layout.failover.stopInstance && old.ec2) plan.push({ step: `stop-instance:${old.name}`, target: old.name, action: 'stop the EC2 instance' });
  plan.push({
    step: 'checkpoint:old-primary-dead',
    target: old.name,
    action:
      layout.failover.confirmOldPrimaryDead === 'always'
        ? 'wait for a person (always asked on this cluster)'
        : canFence
          ? 'wait for a person only if fencing is not confirmed'
          : 'wait for a person: the old primary cannot be fenced from here',
  });
  const received = lsnMax(p.targetStatus.receiveLsn, p.targetStatus.replayLsn);
  const lag = p.oldStatus.reachable && p.oldStatus.inRecovery === false ? lsnMinus(p.oldStatus.currentLsn, received) : null;
  plan.push({
    step: 'data-loss',
    target: target.name,
    action:
      `compare ${target.name}'s received position (${received ?? '?'}) with ${old.name}'s last ` +
      `(${lag === null ? 'not readable now' : `${Math.max(0, lag)} bytes behind now`}); ask at accept-data-loss past ${layout.dataLossThresholdBytes} bytes`,
  });
  plan.push({
    step: 'promote',
    target: target.name,
    action: `pg_promote on ${target.name} (timeline ${p.timelineBefore ?? '?'} → next); confirm it takes a write`,
  });
  const traffic = await Promise.all(
    layout.traffic.map((d) =>
      steps.run(
        `traffic:${d.name}`,
        () => reads.trafficRead({ cluster, driver: d.name }),
        (t) => `points at ${t.site ?? 'no site'} (${t.target ?? '?'})`,
      ),
    ),
  );
  // In the order a run takes them: the front first (what clients use), then the hooks (in order),
  // the services (in order) and the other drivers side by side.
  const isFront = (driver: string) => layout.traffic.find((d) => d.name === driver)?.kind === 'haproxy';
  const move = (t: (typeof traffic)[number], how: string) =>
    plan.push({
      step: `traffic:${t.driver}`,
      target: t.driver,
      action: t.site === target.site ? `already on ${target.site}` : `move from ${t.site ?? 'nowhere'} to ${target.site}${how}`,
    });
  for (const t of traffic.filter((x) => isFront(x.driver))) move(t, ', first: what clients use');
  for (const h of newSite.hooks)
    plan.push({ step: `hook:${h.name}`, target: h.host, action: 'run the site hook (hooks in order, beside the services and the other drivers)' });
  for (const s of newSite.services)
    plan.push({ step: `service-start:${s.site}/${s.service}`, target: s.host, action: 'start the service (in order, beside the hooks)' });
  for (const t of traffic.filter((x) => !isFront(x.driver))) move(t, ' (beside the hooks and services)');
  if (newSite.maintenance)
    plan.push({ step: `maintenance-off:${target.site}`, target: newSite.maintenance.host ?? target.site, action: 'turn maintenance off' });
  steps.note('plan', plan.map((s) => `${s.step} → ${s.action}`).join('; '));
  return failoverResult(c, old, target, {
    outcome: 'planned',
    primary: 'old',
    state: 'dry run: nothing was changed',
    timeline: { before: p.timelineBefore, after: p.timelineBefore },
    traffic: traffic.map((t) => ({ driver: t.driver, site: t.site, target: t.target, changed: false })),
    plan,
  });
}
