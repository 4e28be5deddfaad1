/**
 * The failover after promotion, forward only: the guard, the site's hooks, services, traffic
 * drivers, maintenance off. A step that fails is recorded and the rest still run (traffic matters
 * most); the run then fails naming what is left to do, with the result in its details.
 */
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { TrafficState } from '../../contract/observations';
import { GUARD_SIGNAL } from '../lib/activity-options';
import type { CheckpointOutcome } from '../lib/checkpoint';
import type { DataLoss } from '../lib/data-loss';
import { describeNode, reads, seconds } from '../lib/runbook';
import { hookActs, trafficActs } from '../lib/site-activities';
import { maintenanceOff, startServices } from '../lib/site-steps';
import { messageOf } from '../lib/steps';
import { failoverResult } from './result';
import type { Ctx, FailoverResult, LayoutNode, NewSite } from './types';

const guardActs = proxyActivities<Activities>(GUARD_SIGNAL);

/** What the promotion (or the run that found it done) hands to the steps after it. */
export interface Forward {
  old: LayoutNode;
  target: LayoutNode;
  decisionMs: number;
  promoted: { timeline: number | null };
  timelineBefore: number | null;
  loss: DataLoss;
  fenced: boolean;
  decisions: CheckpointOutcome[];
  newSite: NewSite;
}

/** Guard, hooks, services, traffic, maintenance off: each failure recorded, the rest still done. */
export async function afterPromotion(c: Ctx, f: Forward): Promise<FailoverResult> {
  const { cluster, steps, layout } = c;
  const { target, old } = f;
  const failures: string[] = [];
  // First of all, the guard: from now on the former primary coming back as a primary is fenced again.
  if (c.v2) {
    await steps
      .run(
        'guard',
        () =>
          guardActs.guardWatch({
            cluster,
            node: old.name,
            newPrimary: target.name,
            fencedBy: workflowInfo().workflowId,
            intervalSeconds: layout.failover.guardIntervalSeconds,
          }),
        (g) => g.detail,
      )
      .catch((err: unknown) => failures.push(`the guard of ${old.name}: ${messageOf(err as Error)}`));
  }
  const hooks = await runHooks(c, f, failures);
  await startServices(steps, cluster, f.newSite.services, failures);
  const traffic: FailoverResult['traffic'] = [];
  let trafficOk = true;
  for (const d of layout.traffic) {
    try {
      const t: TrafficState = await steps.run(
        `traffic:${d.name}`,
        () => trafficActs(d).trafficMove({ cluster, driver: d.name, site: target.site }),
        (x) => `${x.changed ? 'moved to' : 'already on'} ${x.site} (${x.target ?? '?'}): ${x.detail}`,
      );
      traffic.push({ driver: d.name, site: t.site, target: t.target, changed: t.changed });
    } catch (err) {
      trafficOk = false;
      failures.push(`traffic driver ${d.name}: ${messageOf(err as Error)}`);
      traffic.push({ driver: d.name, site: null, target: null, changed: undefined });
    }
  }
  const trafficMs = Date.now();
  if (f.newSite.maintenance) await maintenanceOff(steps, cluster, target.site, failures);
  const after = await steps.run(`verify:${target.name}`, () => reads.pgStatus({ cluster, node: target.name }), describeNode).catch(() => null);
  const timelineAfter = after?.timeline ?? f.promoted.timeline;
  const rto = {
    fromDecisionSeconds: trafficOk ? seconds(f.decisionMs, trafficMs) : null,
    fromStartSeconds: trafficOk ? seconds(c.startedMs, trafficMs) : null,
  };
  const oldLeft = f.fenced ? (c.v2 ? 'is fenced (stopped; a restart comes up read-only)' : 'is fenced (stopped)') : 'was confirmed dead by a person';
  const state =
    `${target.name} (${target.site}) is primary on timeline ${timelineAfter ?? '?'}; ` +
    `${old.name} (${old.site}) ${oldLeft}${c.v2 ? ', is watched by the guard,' : ''} and needs \`switchyard rejoin ${cluster} --node ${old.name}\`` +
    (failures.length ? `; NOT DONE: ${failures.join('; ')}` : '');
  const lost = f.loss.bytes === null ? 'unknown' : `${f.loss.bytes} bytes`;
  steps.note(
    'result',
    `${state}; RTO ${rto.fromDecisionSeconds ?? '?'} s from the decision to promote, ${rto.fromStartSeconds ?? '?'} s from start; data lost: ${lost}`,
    failures.length ? 'failed' : 'done',
  );
  await c.notify(
    failures.length ? 'failover.incomplete' : 'failover.completed',
    `failover of ${cluster}: ${state}; RTO ${rto.fromDecisionSeconds ?? '?'} s; data lost ${lost}`,
  );
  const result = failoverResult(c, old, target, {
    outcome: 'completed',
    primary: 'target',
    needsRejoin: [{ node: old.name, site: old.site, reason: `former primary; ${target.name} was promoted to timeline ${timelineAfter ?? '?'}` }],
    state,
    fenced: f.fenced,
    dataLoss: f.loss,
    rto,
    timeline: { before: f.timelineBefore, after: timelineAfter },
    checkpoints: f.decisions,
    traffic,
    hooks,
  });
  if (failures.length) {
    const left = `failover of ${cluster} promoted ${target.name} but did not finish: ${failures.join('; ')}.`;
    throw ApplicationFailure.create({
      message: c.v2
        ? `${left} Fix these, then run \`switchyard failover ${cluster} --to ${target.site}\`: ` +
          `it finds ${target.name} promoted and finishes the steps left (guard, hooks, services, traffic, maintenance).`
        : `${left} Fix these and re-run the failed steps (a new failover run skips what is done).`,
      type: 'FailoverIncomplete',
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

/** The site's own steps (its afterPromote hooks), in order, each recorded with its output; after a failure the rest are skipped. */
async function runHooks(c: Ctx, f: Forward, failures: string[]): Promise<FailoverResult['hooks']> {
  const { cluster, steps } = c;
  const hooks: FailoverResult['hooks'] = [];
  let hooksOk = true;
  for (const h of f.newSite.hooks) {
    if (!hooksOk) {
      steps.skip(`hook:${h.name}`, 'an earlier hook failed');
      continue;
    }
    try {
      const r = await steps.run(
        `hook:${h.name}`,
        () => hookActs(h).runHook({ cluster, site: f.target.site, hook: h.name }),
        (x) =>
          x.alreadyDone
            ? `${h.host}: already done (its check exited 0)`
            : `${h.host}: exit ${x.exitCode ?? 'none'}${x.stdout.trim() ? `; ${x.stdout.trim().slice(-300)}` : ''}`,
      );
      hooks.push({ hook: h.name, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr });
      if (r.exitCode !== 0) {
        hooksOk = false;
        const how = r.timedOut ? 'timed out' : `exited ${r.exitCode ?? 'without status'}`;
        const msg = `hook ${h.name} on ${h.host} ${how}: ${(r.stderr.trim() || r.stdout.trim()).slice(-300)}`;
        steps.note(`hook:${h.name}`, msg, 'failed');
        failures.push(msg);
      }
    } catch (err) {
      hooksOk = false;
      failures.push(`hook ${h.name}: ${messageOf(err as Error)}`);
    }
  }
  return hooks;
}
