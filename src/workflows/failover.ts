/**
 * failover: the unplanned move for a cluster whose primary site is failing. Steps, in order:
 *
 *   lock → preflight (standby reachable, in recovery; positions noted) → old site (reach it with a
 *   short bound; maintenance on, services stopped, PostgreSQL fenced; else the `old-primary-dead`
 *   checkpoint) → data-loss gate (`accept-data-loss` past the configured bytes) → promote →
 *   site hooks → services → traffic drivers, each verified → maintenance off → result.
 *
 * Every step is check-then-act, so a retried activity or a run resumed after a worker crash does no
 * harm (a standby that is already primary is success). An abort before promotion undoes what it
 * changed (old primary started again, services, maintenance) and says what state it left. After
 * promotion the run goes forward only: a step that fails there is recorded, the remaining steps
 * still run (traffic matters most), and the run fails at the end naming what is left to do.
 *
 * The parts are in ./failover/, in the order they run: target (which standby), old-site (reach and
 * fence it), old-primary-dead, data-loss-gate, after-promotion; resume, plan (a dry run), undo and
 * result (the one result builder every exit uses).
 */
import { ApplicationFailure, CancellationScope, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { fenceOptions } from './lib/activity-options';
import { Checkpoints, checkpointNotices } from './lib/checkpoint';
import { Aborted, describeNode, notifyVia, promotion, reads, refused, runbookInput } from './lib/runbook';
import { messageOf, StepLog } from './lib/steps';
import { withClusterLock } from './lib/with-cluster-lock';
import { afterPromotion } from './failover/after-promotion';
import { dataLossGate } from './failover/data-loss-gate';
import { confirmOldPrimaryDead, recheckBeforePromotion } from './failover/old-primary-dead';
import { fenceOldSite, reachOldSite } from './failover/old-site';
import { planOnly } from './failover/plan';
import { failoverResult } from './failover/result';
import { resumeFailover } from './failover/resume';
import { pickTarget } from './failover/target';
import {
  FAILOVER_CHECKPOINTS,
  FENCE_PATCH,
  STAGED_PATCH,
  type Attempt,
  type Ctx,
  type FailoverInput,
  type FailoverResult,
  type NewSite,
} from './failover/types';
import { undoAll } from './failover/undo';

export { FAILOVER_CHECKPOINTS, FENCE_PATCH } from './failover/types';
export type { FailoverInput, FailoverResult } from './failover/types';
export type { DataLoss } from './lib/data-loss';

export async function failover(input: FailoverInput): Promise<FailoverResult> {
  const { cluster, requestedBy, dryRun } = runbookInput('failover', input);
  const steps = new StepLog('failover', cluster);
  const reason = typeof input.reason === 'string' && input.reason ? input.reason : null;
  const startedMs = Date.now();
  // Decided once, before anything else: a run recorded before the patch replays the old path
  // throughout, a new run takes the new one throughout.
  const v2 = patched(FENCE_PATCH);
  const stagedInput = input.staged && typeof input.staged === 'object' && typeof input.staged.by === 'string' ? input.staged : null;
  const stagedPath = stagedInput !== null && patched(STAGED_PATCH);

  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.sites.join(', ')}; ${l.nodes.length} database nodes, ${l.traffic.length} traffic drivers`,
  );
  const notify = notifyVia(layout.notify, cluster, workflowInfo().workflowId);
  const staged =
    stagedPath && stagedInput
      ? {
          by: stagedInput.by,
          // Both must allow it: the watch (anti-flapping) and the cluster's own setting, read now.
          automatic: stagedInput.automatic === true && layout.failover.automatic === true,
          why:
            stagedInput.automatic === true && layout.failover.automatic !== true
              ? 'automatic mode is off for this cluster (failover.automatic)'
              : String(stagedInput.why ?? ''),
        }
      : null;

  const run = () => runFailover({ input, cluster, requestedBy, dryRun, reason, startedMs, steps, layout, notify, v2, staged });
  if (dryRun) return run();
  return withClusterLock(cluster, 'failover', requestedBy, steps, run);
}

async function runFailover(c: Ctx): Promise<FailoverResult> {
  const { cluster, steps, layout, dryRun } = c;
  const { workflowId } = workflowInfo();

  // ---- preflight: who is primary, which standby is promoted ---------------------------------
  const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`preflight:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
  const preflightAt = new Date().toISOString();
  const byName = new Map(nodes.map((n) => [n.node, n]));
  const picked = pickTarget(c, nodes);
  const targetNode = picked.node;
  const target = layout.nodes.find((n) => n.name === targetNode.node)!;
  const others = layout.nodes.filter((n) => n.name !== target.name);
  if (others.length !== 1) throw refused(`cluster ${cluster} has ${layout.nodes.length} database nodes; failover handles two sites (one primary, one standby)`);
  const old = others[0];
  const oldStatus = byName.get(old.name)!;
  const timelineBefore = targetNode.timeline ?? null;
  const why = c.reason ? `: ${c.reason}` : '';
  steps.note('plan', `fail over ${cluster} from ${old.site} (${old.name}) to ${target.site} (${target.name})${why}`);
  const newSite: NewSite = {
    maintenance: layout.maintenance.find((m) => m.site === target.site && m.host),
    services: layout.services.filter((s) => s.site === target.site),
    hooks: layout.hooks.filter((h) => h.site === target.site),
  };
  if (picked.resume) return resumeFailover(c, { old, target, oldStatus, targetStatus: targetNode, newSite });

  if (!dryRun)
    await c.notify('failover.started', `failover of ${cluster} from ${old.site} to ${target.site} started by ${c.requestedBy}${why} (${workflowId})`);

  const checkpoints = new Checkpoints(
    steps,
    layout.checkpoints,
    c.requestedBy,
    FAILOVER_CHECKPOINTS,
    checkpointNotices(c.notify),
    runbookInput('failover', c.input).startProof,
  );

  // ---- old site: reach it with a short bound ---------------------------------------------------
  const oldSite = await reachOldSite(c, old);
  if (dryRun) return planOnly(c, { old, target, oldStatus, targetStatus: targetNode, oldSite, newSite, timelineBefore });

  const a: Attempt = {
    old,
    target,
    oldWhere: `${old.name} (${old.host}:${old.port})`,
    reach: oldSite.reach,
    fenceActs: proxyActivities<Activities>(fenceOptions(layout.failover.fastStopTimeoutSeconds)),
    mark: { by: workflowId, newPrimary: target.name, reason: c.reason ?? `failover to ${target.site} started by ${c.requestedBy}` },
    checkpoints,
    decisions: [],
    undo: [],
    tried: [],
    fence: null,
    fenced: false,
    instanceStopped: false,
    approvedDead: false,
  };
  let promoting = false;
  try {
    a.tried.push(`PostgreSQL ${a.oldWhere}: ${describeNode(oldStatus)}`);
    for (const h of oldSite.hosts) a.tried.push(`ssh ${h}: ${oldSite.seen(h)}`);
    await fenceOldSite(c, a, oldSite);
    // ---- old-primary-dead: a person confirms when the machine could not be fenced here ---------
    await confirmOldPrimaryDead(c, a);
    // ---- data-loss gate --------------------------------------------------------------------------
    const loss = await dataLossGate(c, a, oldStatus, preflightAt, timelineBefore);
    // ---- right before promotion: the old primary once more (the gate may have waited hours) ----
    if (c.v2) await recheckBeforePromotion(c, a);
    if (c.staged?.automatic && a.decisions.length === 0)
      steps.note(
        'automatic',
        `no person was asked: staged by ${c.staged.by} in automatic mode; ${old.name} was fenced and confirmed down by this run ` +
          `(${a.fence?.detail ?? 'instance stopped'}); data lost: ${loss.detail}`,
      );

    // ---- promote: from here the run only goes forward ---------------------------------------------
    const decisionMs = Date.now();
    promoting = true;
    const promoted = await steps.run(
      'promote',
      () => promotion.pgPromote({ cluster, node: target.name, waitSeconds: 60 }),
      (p) => p.detail,
    );
    const probe = await steps.run(
      `write-probe:${target.name}`,
      () => promotion.pgWriteProbe({ cluster, node: target.name }),
      (p) => p.detail,
    );
    if (!probe.ok) throw ApplicationFailure.nonRetryable(`${target.name} was promoted but refuses writes: ${probe.detail}`, 'PromotionUnconfirmed');
    return await afterPromotion(c, {
      old,
      target,
      decisionMs,
      promoted: { timeline: promoted.timeline },
      timelineBefore,
      loss,
      fenced: a.fenced,
      decisions: a.decisions,
      newSite,
    });
  } catch (err) {
    // Once promotion was asked for, nothing is undone: restarting the old primary could split the cluster.
    if (promoting) throw err;
    const because = err instanceof Aborted ? err.because : messageOf(err as Error);
    const state = await CancellationScope.nonCancellable(async () => {
      const left = await undoAll(steps, a);
      await c.notify('failover.aborted', `failover of ${cluster} stopped before promotion: ${because}. ${left}`);
      return left;
    });
    if (!(err instanceof Aborted)) {
      if (isCancellation(err)) throw err;
      const type = err instanceof ApplicationFailure && err.type ? err.type : 'FailoverStopped';
      throw ApplicationFailure.create({ message: `${because}. State: ${state}`, type, nonRetryable: true });
    }
    return failoverResult(c, old, target, {
      outcome: 'aborted',
      primary: 'old',
      abortedBecause: because,
      state,
      fenced: a.fenced,
      timeline: { before: timelineBefore, after: timelineBefore },
      checkpoints: a.decisions,
    });
  }
}
