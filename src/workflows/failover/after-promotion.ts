/**
 * The failover after promotion, forward only: the guard, the site's hooks, services, traffic
 * drivers, maintenance off. A step that fails is recorded and the rest still run (traffic matters
 * most); the run then fails naming what is left to do, with the result in its details.
 *
 * Since PARALLEL_FORWARD_PATCH: the guard, then the front (the haproxy drivers: what clients
 * connect through) moved and verified, then side by side the hooks (one chain, in their declared
 * order: a hook may need the one before it), the services (one chain, in their declared order:
 * the topology says nothing of their independence) and each other traffic driver; maintenance off
 * once all of them ended. A run recorded before the patch takes the sequential path: guard, hooks,
 * services, drivers in order, maintenance off.
 */
import { ApplicationFailure, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
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

/** The front first, then the hooks, services and other drivers side by side (see the top of this file). */
export const PARALLEL_FORWARD_PATCH = 'failover-parallel-forward';

type Driver = Ctx['layout']['traffic'][number];

/** The drivers moved first: haproxy, what clients connect through. */
export function isFront(d: Pick<Driver, 'kind'>): boolean {
  return d.kind === 'haproxy';
}

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
  const parallel = patched(PARALLEL_FORWARD_PATCH);
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
  const { hooks, traffic, trafficOk, trafficMs, frontMs } = parallel ? await frontThenTheRest(c, f, failures) : await oneAfterAnother(c, f, failures);
  if (f.newSite.maintenance) await maintenanceOff(steps, cluster, target.site, failures);
  const after = await steps.run(`verify:${target.name}`, () => reads.pgStatus({ cluster, node: target.name }), describeNode).catch(() => null);
  const timelineAfter = after?.timeline ?? f.promoted.timeline;
  const rto = {
    fromDecisionSeconds: trafficOk ? seconds(f.decisionMs, trafficMs) : null,
    fromStartSeconds: trafficOk ? seconds(c.startedMs, trafficMs) : null,
    ...(frontMs !== undefined ? { frontFromDecisionSeconds: frontMs === null ? null : seconds(f.decisionMs, frontMs) } : {}),
  };
  const oldLeft = !f.fenced ? 'was confirmed dead by a person' : c.v2 ? 'is fenced (stopped; a restart comes up read-only)' : 'is fenced (stopped)';
  const state =
    `${target.name} (${target.site}) is primary on timeline ${timelineAfter ?? '?'}; ` +
    `${old.name} (${old.site}) ${oldLeft}${c.v2 ? ', is watched by the guard,' : ''} and needs \`switchyard rejoin ${cluster} --node ${old.name}\`` +
    (failures.length ? `; NOT DONE: ${failures.join('; ')}` : '');
  const lost = f.loss.bytes === null ? 'unknown' : `${f.loss.bytes} bytes`;
  steps.note(
    'result',
    `${state}; RTO ${rto.fromDecisionSeconds ?? '?'} s from the decision to promote` +
      (frontMs !== undefined ? ` (the front ${frontMs === null ? 'NOT verified' : `verified after ${seconds(f.decisionMs, frontMs)} s`})` : '') +
      `, ${rto.fromStartSeconds ?? '?'} s from start; data lost: ${lost}`,
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

interface Forwarded {
  hooks: FailoverResult['hooks'];
  traffic: FailoverResult['traffic'];
  /** Every driver verified on the new site. */
  trafficOk: boolean;
  /** When the last driver was verified. */
  trafficMs: number;
  /** When the front was verified (null: a front driver failed); undefined on the sequential path or without a front. */
  frontMs?: number | null;
}

/** The released order: hooks, services, then each driver, one after another. */
async function oneAfterAnother(c: Ctx, f: Forward, failures: string[]): Promise<Forwarded> {
  const hooks = await runHooks(c, f, failures);
  await startServices(c.steps, c.cluster, f.newSite.services, failures);
  const traffic: FailoverResult['traffic'] = [];
  let trafficOk = true;
  for (const d of c.layout.traffic) {
    const moved = await moveDriver(c, f, d);
    traffic.push(moved.entry);
    if (moved.failure !== null) {
      trafficOk = false;
      failures.push(moved.failure);
    }
  }
  return { hooks, traffic, trafficOk, trafficMs: Date.now() };
}

/**
 * PARALLEL_FORWARD_PATCH: the front (each haproxy driver, side by side) moved and verified first;
 * then the hook chain, the service chain and each other driver side by side. Failures are listed
 * in the released order (hooks, services, traffic in the topology's order), whichever ended first.
 */
async function frontThenTheRest(c: Ctx, f: Forward, failures: string[]): Promise<Forwarded> {
  const { steps, layout } = c;
  const moved: (Moved | undefined)[] = layout.traffic.map(() => undefined);
  const move = (i: number) => moveDriver(c, f, layout.traffic[i]).then((m) => void (moved[i] = m));
  const indexes = layout.traffic.map((_, i) => i);
  const front = indexes.filter((i) => isFront(layout.traffic[i]));
  const others = indexes.filter((i) => !isFront(layout.traffic[i]));

  let frontMs: number | null | undefined;
  if (front.length) {
    await Promise.all(front.map(move));
    const ok = front.every((i) => moved[i]!.failure === null);
    frontMs = ok ? Date.now() : null;
    const names = front.map((i) => layout.traffic[i].name).join(', ');
    steps.note(
      'front-verified',
      frontMs !== null
        ? `${names} on ${f.target.site}, verified ${seconds(f.decisionMs, frontMs)} s after the decision to promote`
        : `${names}: NOT verified on ${f.target.site} (${front.flatMap((i) => moved[i]!.failure ?? []).join('; ')})`,
      ok ? 'done' : 'failed',
    );
  }

  const hookFailures: string[] = [];
  const serviceFailures: string[] = [];
  const [hooks] = await Promise.all([runHooks(c, f, hookFailures), startServices(steps, c.cluster, f.newSite.services, serviceFailures), ...others.map(move)]);
  const all = moved.map((m) => m!);
  failures.push(...hookFailures, ...serviceFailures, ...all.flatMap((m) => m.failure ?? []));
  return {
    hooks,
    traffic: all.map((m) => m.entry),
    trafficOk: all.every((m) => m.failure === null),
    trafficMs: all.length ? Math.max(...all.map((m) => m.atMs)) : Date.now(),
    frontMs,
  };
}

interface Moved {
  entry: FailoverResult['traffic'][number];
  /** What failed, for the run's list of what is left; null when verified on the new site. */
  failure: string | null;
  /** When the move ended (workflow time). */
  atMs: number;
}

/** One `traffic:<driver>` step: moved to the new site and read back by its driver; a failure is returned, not thrown. */
async function moveDriver(c: Ctx, f: Forward, d: Driver): Promise<Moved> {
  const { steps, cluster } = c;
  try {
    const t: TrafficState = await steps.run(
      `traffic:${d.name}`,
      () => trafficActs(d).trafficMove({ cluster, driver: d.name, site: f.target.site }),
      (x) => `${x.changed ? 'moved to' : 'already on'} ${x.site} (${x.target ?? '?'}): ${x.detail}`,
    );
    return { entry: { driver: d.name, site: t.site, target: t.target, changed: t.changed }, failure: null, atMs: Date.now() };
  } catch (err) {
    return {
      entry: { driver: d.name, site: null, target: null, changed: undefined },
      failure: `traffic driver ${d.name}: ${messageOf(err as Error)}`,
      atMs: Date.now(),
    };
  }
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
