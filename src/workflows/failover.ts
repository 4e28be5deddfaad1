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
 */
import { ApplicationFailure, CancellationScope, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { PgFenceResult, PgNodeStatus, SshCheck, TrafficState } from '../contract/observations';
import type { ClusterLayout } from '../topology/layout';
import { Checkpoints, type CheckpointOutcome } from './lib/checkpoint';
import { actions, Aborted, describeNode, notifyVia, promotion, reads, refused, runbookInput, runUndo, seconds, type Undo } from './lib/runbook';
import { withClusterLock } from './lib/with-cluster-lock';
import { judgeLoss, lossGate, type DataLoss } from './lib/data-loss';
import { cannotWrite, explainState, nodeState, type NodeState } from './lib/node-state';
import { hookActs, trafficActs } from './lib/site-activities';
import { durationSeconds } from '../topology/duration';
import { lsnMax, lsnMinus } from '../contract/lsn';
import { formatBytes } from '../contract/format';
import { messageOf, StepLog } from './lib/steps';
import type { PlanStep, StepRecord } from '../contract/messages';
import { FAILOVER_POWER, fenceOptions, GUARD_SIGNAL, reachOptions } from './lib/activity-options';

export interface FailoverInput {
  cluster: string;
  /** Why, for the step log and the notifications ("dc1 lost power"). */
  reason?: string;
  /** Run only the read-only checks and return the plan. */
  dryRun?: boolean;
  /** Who started the run (the two-person rule compares approvers with this). */
  requestedBy: string;
  /** The site to promote; default: the one standby. */
  to?: string;
}

export const FAILOVER_CHECKPOINTS = ['old-primary-dead', 'accept-data-loss'] as const;

/**
 * Issue 11: a fence that lasts (standby.signal + marker; STONITH; forced instance stop), checks
 * that fail closed (an unknown old primary is never taken for dead; it is checked again right
 * before promotion), the data-loss gate asking for stale lower bounds, an undo that looks for
 * another primary first, the guard, and a failover started again finishing one that promoted.
 */
export const FENCE_PATCH = 'failover-fence-lasts';

export type { DataLoss } from './lib/data-loss';

export interface FailoverResult {
  cluster: string;
  outcome: 'completed' | 'aborted' | 'planned';
  dryRun: boolean;
  reason: string | null;
  requestedBy: string;
  from: { site: string; node: string };
  to: { site: string; node: string };
  /** The cluster afterwards, as this run left it. */
  topology: {
    primarySite: string;
    primaryNode: string;
    /** Former primaries that must be rebuilt as standbys (`switchyard rejoin`) before they serve again. */
    needsRejoin: { node: string; site: string; reason: string }[];
  };
  /** For an aborted run: why, and what state the cluster was left in. */
  abortedBecause: string | null;
  state: string;
  fenced: boolean;
  dataLoss: DataLoss | null;
  /** Bytes lost (dataLoss.bytes), at the top for dashboards; null when unknown or not promoted. */
  dataLostBytes: number | null;
  rto: {
    /** From the decision to promote until every traffic driver was verified on the new site. */
    fromDecisionSeconds: number | null;
    fromStartSeconds: number | null;
  };
  timeline: { before: number | null; after: number | null };
  checkpoints: CheckpointOutcome[];
  traffic: { driver: string; site: string | null; target: string | null; changed: boolean | undefined }[];
  hooks: { hook: string; exitCode: number | null; stdout: string; stderr: string }[];
  plan: PlanStep[];
  steps: StepRecord[];
}

export async function failover(input: FailoverInput): Promise<FailoverResult> {
  const { cluster, requestedBy, dryRun } = runbookInput('failover', input);
  const steps = new StepLog('failover', cluster);
  const reason = typeof input.reason === 'string' && input.reason ? input.reason : null;
  const startedMs = Date.now();
  // Decided once, before anything else: a run recorded before the patch replays the old path
  // throughout, a new run takes the new one throughout.
  const v2 = patched(FENCE_PATCH);

  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.sites.join(', ')}; ${l.nodes.length} database nodes, ${l.traffic.length} traffic drivers`,
  );
  const notify = notifyVia(layout.notify, cluster, workflowInfo().workflowId);

  const run = () => runFailover({ input, cluster, requestedBy, dryRun, reason, startedMs, steps, layout, notify, v2 });
  if (dryRun) return run();
  return withClusterLock(cluster, 'failover', requestedBy, steps, run);
}

interface Ctx {
  input: FailoverInput;
  cluster: string;
  requestedBy: string;
  dryRun: boolean;
  reason: string | null;
  startedMs: number;
  steps: StepLog;
  layout: ClusterLayout;
  notify: (event: string, text: string) => Promise<unknown>;
  /** The FENCE_PATCH path. */
  v2: boolean;
}

async function runFailover(c: Ctx): Promise<FailoverResult> {
  const { cluster, steps, layout, dryRun, v2 } = c;
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
  steps.note('plan', `fail over ${cluster} from ${old.site} (${old.name}) to ${target.site} (${target.name})${c.reason ? `: ${c.reason}` : ''}`);
  const newMaintenance = layout.maintenance.find((m) => m.site === target.site && m.host);
  const newServices = layout.services.filter((s) => s.site === target.site);
  const newHooks = layout.hooks.filter((h) => h.site === target.site);
  if (picked.resume) return resumeFailover(c, { old, target, oldStatus, targetStatus: targetNode, newMaintenance, newServices, newHooks });

  if (!dryRun)
    await c.notify(
      'failover.started',
      `failover of ${cluster} from ${old.site} to ${target.site} started by ${c.requestedBy}${c.reason ? `: ${c.reason}` : ''} (${workflowId})`,
    );

  const checkpoints = new Checkpoints(
    steps,
    {
      approvers: layout.checkpoints.approvers,
      twoPerson: layout.checkpoints.twoPerson,
      remindAfterSeconds: layout.checkpoints.remindAfterSeconds,
      deadlineSeconds: layout.checkpoints.deadlineSeconds,
    },
    c.requestedBy,
    FAILOVER_CHECKPOINTS,
    (event, text) =>
      c.notify(event === 'checkpoint' ? 'checkpoint.waiting' : event === 'checkpoint-reminder' ? 'checkpoint.reminder' : 'checkpoint.deadline', text),
  );
  const decisions: CheckpointOutcome[] = [];

  // ---- old site: reach it with a short bound ---------------------------------------------------
  const reachBound = layout.failover.reachTimeoutSeconds;
  // Bounded: a dead site answers "unreachable" within the bound (activity-options.ts).
  const reach = proxyActivities<Activities>(reachOptions(reachBound));
  const oldHosts = [
    ...new Set([
      old.sshHost,
      ...layout.maintenance.filter((m) => m.site === old.site && m.host).map((m) => m.host as string),
      ...layout.services.filter((s) => s.site === old.site).map((s) => s.host),
    ]),
  ];
  const sshSeen = new Map<string, SshCheck>();
  await Promise.all(
    oldHosts.map((h) =>
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
  const hostOk = (h: string | null) => h !== null && sshSeen.get(h)?.ok === true;
  const oldMaintenance = layout.maintenance.find((m) => m.site === old.site && m.host);
  const oldServices = layout.services.filter((s) => s.site === old.site);

  if (dryRun)
    return planOnly(c, {
      old,
      target,
      oldStatus,
      targetStatus: targetNode,
      hostOk,
      oldMaintenance,
      oldServices,
      newMaintenance,
      newServices,
      newHooks,
      timelineBefore,
    });

  // What was changed before promotion, undone in reverse order if the run aborts.
  const undo: Undo[] = [];
  const tried: string[] = [];
  let fence: PgFenceResult | null = null;
  let fenced = false;
  let instanceStopped = false;
  let promoting = false;
  const oldWhere = `${old.name} (${old.host}:${old.port})`;
  const fenceActs = proxyActivities<Activities>(fenceOptions(layout.failover.fastStopTimeoutSeconds));
  const mark = { by: workflowId, newPrimary: target.name, reason: c.reason ?? `failover to ${target.site} started by ${c.requestedBy}` };
  /** The old primary as seen now; a failed read is "unknown". */
  const observeOld = async (step: string): Promise<{ state: NodeState; seen: string }> => {
    const now = await steps.run(step, () => reach.pgStatus({ cluster, node: old.name }), describeNode).catch((err: unknown) => messageOf(err as Error));
    if (typeof now === 'string') return { state: 'unknown', seen: `the status read failed: ${now}` };
    const state = nodeState(now);
    return { state, seen: `${describeNode(now)} (${explainState(state)})` };
  };

  try {
    tried.push(`PostgreSQL ${oldWhere}: ${describeNode(oldStatus)}`);
    for (const h of oldHosts) tried.push(`ssh ${h}: ${sshSeen.get(h)?.ok ? 'reachable' : (sshSeen.get(h)?.detail ?? 'not tried')}`);

    // Maintenance on the old site first.
    if (oldMaintenance) {
      if (hostOk(oldMaintenance.host)) {
        try {
          const m = await steps.run(
            `maintenance-on:${old.site}`,
            () => actions.maintenanceSet({ cluster, site: old.site, on: true }),
            (r) => r.detail,
          );
          if (m.changed)
            undo.push({
              what: `maintenance off at ${old.site}`,
              run: async () => (await actions.maintenanceSet({ cluster, site: old.site, on: false })).detail,
            });
        } catch (err) {
          tried.push(`maintenance on at ${old.site} failed: ${messageOf(err as Error)}`);
        }
      } else steps.skip(`maintenance-on:${old.site}`, `${oldMaintenance.host} is unreachable`);
    }
    // Stop the old site's services.
    for (const s of oldServices) {
      if (!hostOk(s.host)) {
        steps.skip(`service-stop:${s.site}/${s.service}`, `${s.host} is unreachable`);
        continue;
      }
      try {
        const r = await steps.run(
          `service-stop:${s.site}/${s.service}`,
          () => actions.serviceStop({ cluster, site: s.site, service: s.service }),
          (x) => x.detail,
        );
        if (r.changed)
          undo.push({
            what: `start ${s.service} at ${s.site}`,
            run: async () => (await actions.serviceStart({ cluster, site: s.site, service: s.service })).detail,
          });
      } catch (err) {
        tried.push(`stopping ${s.service} at ${s.site} failed: ${messageOf(err as Error)}`);
      }
    }
    // Fence the old primary: stop PostgreSQL (fast, then immediate), confirm it refuses
    // connections, and (v2) make it last: standby.signal and the fence marker, boot service off.
    if (hostOk(old.sshHost)) {
      try {
        fence = await steps.run(
          'fence',
          () => fenceActs.pgFence({ cluster, node: old.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds, ...(v2 ? { mark } : {}) }),
          (f) => f.detail,
        );
        fenced = v2 ? fence.fenced && fence.marked === true : fence.fenced;
        tried.push(`fence ${old.name}: ${fence.steps.join('; ')}`);
        if (v2) {
          const f = fence;
          if (f.fenced && f.marked !== true) tried.push(`${old.name} is stopped but its fence could not be marked: a restart would make it a primary again`);
          if (f.marked === true || (f.changed && f.wasRunning))
            undo.push({ what: `unfence ${old.name}`, run: () => unfence(c, old, target, workflowId, f.marked === true, f.changed && f.wasRunning === true) });
        } else if (fence.changed && fence.wasRunning)
          undo.push({ what: `start PostgreSQL ${old.name} again`, run: async () => (await actions.pgStart({ cluster, node: old.name })).detail });
      } catch (err) {
        tried.push(`fencing ${old.name} failed: ${messageOf(err as Error)}`);
      }
    } else {
      steps.skip('fence', `${old.sshHost} is unreachable over SSH: PostgreSQL cannot be stopped from here`);
    }
    // STONITH: the node's own power control, when SSH could not fence it.
    if (v2 && !fenced && old.stonith) {
      try {
        const p = await steps.run(
          `stonith:${old.name}`,
          () => powerActs.stonith({ cluster, node: old.name }),
          (r) => r.detail,
        );
        tried.push(p.detail);
        const after = await observeOld(`confirm-down:${old.name}`);
        fenced = p.ok && (after.state === 'down' || after.state === 'no-answer');
        tried.push(`after STONITH, PostgreSQL ${oldWhere}: ${after.seen}`);
      } catch (err) {
        tried.push(`STONITH of ${old.name} failed: ${messageOf(err as Error)}`);
      }
    }
    if (layout.failover.stopInstance && old.ec2) {
      try {
        const s = await steps.run(
          `stop-instance:${old.name}`,
          () => actions.ec2StopInstance({ cluster, node: old.name, ...(v2 ? { forceAfterSeconds: layout.failover.forceStopAfterSeconds } : {}) }),
          (r) => r.detail,
        );
        instanceStopped = s.stateAfter === 'stopped';
        tried.push(`EC2 instance of ${old.name}: ${s.detail}`);
      } catch (err) {
        tried.push(`stopping the EC2 instance of ${old.name} failed: ${messageOf(err as Error)}`);
      }
      if (!fenced && instanceStopped) {
        if (v2) {
          const after = await observeOld(`confirm-down:${old.name}`);
          fenced = after.state === 'down' || after.state === 'no-answer';
          tried.push(`after the instance stop, PostgreSQL ${oldWhere}: ${after.seen}`);
        } else {
          const again = await steps.run(`confirm-down:${old.name}`, () => reach.pgStatus({ cluster, node: old.name }), describeNode);
          fenced = !again.reachable;
          tried.push(`after the instance stop, PostgreSQL ${oldWhere}: ${describeNode(again)}`);
        }
      }
    }

    // ---- old-primary-dead: a person confirms when the machine could not be fenced here ---------
    let approvedDead = false;
    /** Ask until a person's approval agrees with what we see: an old primary that answers is refused, an unknown one asked about again. */
    const askUntilDown = async (firstPrompt: string): Promise<void> => {
      let prompt = firstPrompt;
      for (;;) {
        const d = await checkpoints.wait('old-primary-dead', { prompt, safety: true });
        decisions.push(d);
        if (d.decision !== 'approve')
          throw new Aborted(
            d.decision === 'deadline'
              ? 'no decision at old-primary-dead before its deadline'
              : `old-primary-dead rejected by ${d.by}${d.comment ? `: ${d.comment}` : ''}`,
          );
        // A person's word does not outrank what we can see: a primary that still answers is not dead,
        // and one whose state cannot be read is asked about again, never taken for dead.
        const now = await observeOld(`confirm-down:${old.name}`);
        if (now.state === 'primary') {
          throw refused(
            `${oldWhere} still accepts connections as a primary (${now.seen}) although old-primary-dead was approved: ` +
              `promoting ${target.name} now would split the cluster. Stop PostgreSQL on ${old.name} or cut it off from the network, then start the failover again.`,
          );
        }
        if (now.state !== 'unknown') {
          approvedDead = true;
          return;
        }
        prompt =
          `After ${d.by}'s approval ${old.name} was checked again and its state is UNKNOWN: ${now.seen}. Nothing was promoted. ` +
          `It may still take writes (a frozen or hung machine resumes where it stopped). Power it off or cut it off from clients and from ${target.name}, then approve again; reject to stop with nothing promoted.`;
        steps.note(`unknown:${old.name}`, prompt, 'failed');
      }
    };
    if (!fenced || layout.failover.confirmOldPrimaryDead === 'always') {
      const why = fenced
        ? `${old.name} was fenced (${fence?.detail ?? 'instance stopped'}); this cluster asks a person every time (failover.confirmOldPrimaryDead: always).`
        : `${old.name} at ${old.site} could not be fenced and confirmed down from here.`;
      const prompt =
        `${why} Tried and seen: ${tried.join('; ')}. ` +
        `Ensure that the initial machine actually is dead (powered off, or cut off from clients and from ${target.name}) before approving: ` +
        `promoting ${target.name} while ${old.name} still takes writes splits the cluster. Reject to stop with nothing promoted.`;
      if (v2) await askUntilDown(prompt);
      else {
        const d = await checkpoints.wait('old-primary-dead', { prompt, safety: true });
        decisions.push(d);
        if (d.decision !== 'approve')
          throw new Aborted(
            d.decision === 'deadline'
              ? 'no decision at old-primary-dead before its deadline'
              : `old-primary-dead rejected by ${d.by}${d.comment ? `: ${d.comment}` : ''}`,
          );
        const now = await steps.run(`confirm-down:${old.name}`, () => reach.pgStatus({ cluster, node: old.name }), describeNode).catch(() => null);
        if (now && now.reachable && now.inRecovery === false) {
          throw refused(
            `${oldWhere} still accepts connections as a primary (${describeNode(now)}) although old-primary-dead was approved: ` +
              `promoting ${target.name} now would split the cluster. Stop PostgreSQL on ${old.name} or cut it off from the network, then start the failover again.`,
          );
        }
      }
    }

    // ---- data-loss gate --------------------------------------------------------------------------
    const standbyNow = await steps.run(`standby:${target.name}`, () => reads.pgStatus({ cluster, node: target.name }), describeNode);
    if (!standbyNow.reachable)
      throw refused(`${target.name} (${target.site}), the standby to promote, stopped answering: ${standbyNow.error ?? 'no answer'}. Nothing was promoted.`);
    if (standbyNow.inRecovery === false && timelineBefore !== null && (standbyNow.timeline ?? 0) > timelineBefore) {
      steps.note('data-loss', `${target.name} is already out of recovery (timeline ${standbyNow.timeline}): promoted earlier`);
    }
    const loss = await measureLoss(c, old.name, fence, oldStatus, standbyNow, preflightAt);
    steps.note('data-loss', loss.detail, 'done');
    const gate = v2
      ? lossGate(loss, layout.dataLossThresholdBytes, durationSeconds(layout.failover.dataLossFreshness ?? '10s'), Date.now())
      : { ask: loss.bytes === null || loss.bytes > layout.dataLossThresholdBytes, why: '' };
    if (gate.ask) {
      const prompt =
        loss.bytes === null
          ? `The data lost cannot be measured: ${loss.detail}. Approve to promote ${target.name} anyway; reject to stop with nothing promoted.`
          : v2 && loss.bytes <= layout.dataLossThresholdBytes
            ? `How much ${old.name} wrote that ${target.name} does not have is not known: ${gate.why}. ${loss.detail}. ` +
              `Approving promotes ${target.name}; whatever ${old.name} committed after that reading is lost from the new timeline. Reject to stop with nothing promoted.`
            : `${target.name} is behind the old primary by ${loss.bytes} bytes (${formatBytes(loss.bytes)}${loss.exact ? '' : ' at least'}; threshold ${layout.dataLossThresholdBytes} bytes): ${loss.detail}. ` +
              `Approving promotes ${target.name} and those writes are lost from the new timeline. Reject to stop with nothing promoted.`;
      const d = await checkpoints.wait('accept-data-loss', { prompt, safety: true });
      decisions.push(d);
      if (d.decision !== 'approve')
        throw new Aborted(
          d.decision === 'deadline'
            ? 'no decision at accept-data-loss before its deadline'
            : `accept-data-loss rejected by ${d.by}${d.comment ? `: ${d.comment}` : ''} (${loss.bytes === null ? 'unknown' : loss.bytes} bytes behind)`,
        );
    } else if (v2) steps.note('data-loss-gate', `not asked: ${gate.why}`);

    // ---- right before promotion: the old primary once more (the gate may have waited hours) ----
    if (v2) {
      let now = await observeOld(`recheck:${old.name}`);
      if (now.state === 'primary') {
        // Back as a primary after the fence (restarted by hand, a reboot): fence it again.
        const f = await steps
          .run(
            'refence',
            () => fenceActs.pgFence({ cluster, node: old.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds, mark }),
            (r) => r.detail,
          )
          .catch((err: unknown) => messageOf(err as Error));
        if (typeof f !== 'string') tried.push(`fenced again right before promotion: ${f.detail}`);
        now = await observeOld(`recheck:${old.name}`);
      }
      if (now.state === 'primary') {
        throw refused(
          `${oldWhere} answers as a writable primary right before promotion (${now.seen}) and could not be fenced again: promoting ${target.name} now would split the cluster. Stop PostgreSQL on ${old.name}, then start the failover again.`,
        );
      }
      if (now.state === 'unknown') {
        await askUntilDown(
          `Right before promoting ${target.name}, ${old.name} was checked once more and its state is UNKNOWN: ${now.seen}. ` +
            `${approvedDead ? 'It was approved as dead before; ' : `It was ${fenced ? 'fenced' : 'not fenced'} earlier; `}it may still take writes. Power it off or cut it off, then approve; reject to stop with nothing promoted.`,
        );
      }
    }

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
      fenced,
      decisions,
      newServices,
      newMaintenance,
      newHooks,
    });
  } catch (err) {
    // Once promotion was asked for, nothing is undone: restarting the old primary could split the cluster.
    if (promoting) throw err;
    const because = err instanceof Aborted ? err.because : messageOf(err as Error);
    const state = await CancellationScope.nonCancellable(async () => {
      const left = await undoAll(steps, undo, { old, target, fenced, instanceStopped });
      await c.notify('failover.aborted', `failover of ${cluster} stopped before promotion: ${because}. ${left}`);
      return left;
    });
    if (!(err instanceof Aborted)) {
      if (isCancellation(err)) throw err;
      const type = err instanceof ApplicationFailure && err.type ? err.type : 'FailoverStopped';
      throw ApplicationFailure.create({ message: `${because}. State: ${state}`, type, nonRetryable: true });
    }
    return { ...baseResult(c, old, target, timelineBefore), outcome: 'aborted', abortedBecause: because, state, fenced, checkpoints: decisions };
  }
}

/**
 * Undo a fence before promotion (an aborted run), failing closed: only while the node that was to
 * be promoted is still a standby (else starting the old primary could make two primaries), remove
 * this run's marker and standby.signal, and start PostgreSQL again if this run stopped it.
 */
async function unfence(
  c: Ctx,
  old: ClusterLayout['nodes'][number],
  target: ClusterLayout['nodes'][number],
  workflowId: string,
  marked: boolean,
  restart: boolean,
): Promise<string> {
  const t = await c.steps.run(`standby-still:${target.name}`, () => reads.pgStatus({ cluster: c.cluster, node: target.name }), describeNode).catch(() => null);
  const state = nodeState(t);
  if (state !== 'standby' && state !== 'standby-streaming') {
    throw new Error(
      `${old.name} was left fenced: ${target.name} is ${t ? describeNode(t) : 'unreadable'} (${explainState(state)}), so starting ${old.name} again could make two primaries. ` +
        `Once you know which node should be primary, start it by hand or run \`switchyard rejoin ${c.cluster} --node ${old.name}\``,
    );
  }
  const done: string[] = [];
  if (marked) done.push((await actions.fenceClear({ cluster: c.cluster, node: old.name, fencedBy: workflowId })).detail);
  if (restart) done.push((await actions.pgStart({ cluster: c.cluster, node: old.name })).detail);
  return done.join('; ') || 'nothing to undo';
}

const powerActs = proxyActivities<Activities>(FAILOVER_POWER);
const guardActs = proxyActivities<Activities>(GUARD_SIGNAL);

/**
 * A failover started again (`--to` the site already promoted) after one that promoted but did not
 * finish: the old primary must not take writes; then the steps after promotion (guard, hooks,
 * services, traffic, maintenance off), each check-then-act, so what was done is found done.
 */
async function resumeFailover(
  c: Ctx,
  p: {
    old: ClusterLayout['nodes'][number];
    target: ClusterLayout['nodes'][number];
    oldStatus: PgNodeStatus;
    targetStatus: PgNodeStatus;
    newMaintenance: Forward['newMaintenance'];
    newServices: Forward['newServices'];
    newHooks: Forward['newHooks'];
  },
): Promise<FailoverResult> {
  const { steps, cluster } = c;
  const { old, target } = p;
  const oldState = nodeState(p.oldStatus);
  if (!cannotWrite(oldState)) {
    throw refused(
      `${target.name} at ${target.site} is already primary, and ${old.name} is ${describeNode(p.oldStatus)} (${explainState(oldState)}): finishing a failover needs ${old.name} unable to take writes. ` +
        `Fence it first (stop PostgreSQL on it, or power it off), then run \`switchyard failover ${cluster} --to ${target.site}\` again.`,
    );
  }
  if (c.dryRun) {
    steps.note('plan', `resume: ${target.name} is already primary; would run the guard, hooks, services, traffic and maintenance steps for ${target.site}`);
    return {
      ...baseResult(c, old, target, p.targetStatus.timeline ?? null),
      outcome: 'planned',
      topology: { primarySite: target.site, primaryNode: target.name, needsRejoin: [] },
      state: `dry run: ${target.name} is already primary; the steps after promotion would be finished`,
      plan: [{ step: 'resume', target: target.name, action: 'finish the steps after promotion (guard, hooks, services, traffic, maintenance off)' }],
    };
  }
  steps.note(
    'resume',
    `${target.name} (${target.site}) is already primary on timeline ${p.targetStatus.timeline ?? '?'} and ${old.name} ${explainState(oldState)}: finishing the steps after promotion`,
  );
  await c.notify(
    'failover.resumed',
    `failover of ${cluster} to ${target.site} resumed by ${c.requestedBy}: finishing the steps after promotion (${workflowInfo().workflowId})`,
  );
  const loss: DataLoss = {
    bytes: null,
    exact: false,
    source: 'unknown',
    oldPrimaryLsn: null,
    standbyLsn: null,
    observedAt: null,
    detail: 'not measured: this run found the promotion done',
  };
  return afterPromotion(c, {
    old,
    target,
    decisionMs: Date.now(),
    promoted: { timeline: p.targetStatus.timeline ?? null },
    timelineBefore: null,
    loss,
    fenced: oldState === 'down' || oldState === 'standby' || oldState === 'standby-streaming',
    decisions: [],
    newServices: p.newServices,
    newMaintenance: p.newMaintenance,
    newHooks: p.newHooks,
  });
}

/** A result with every field set the way a run that changed nothing would; each outcome overrides what it did. */
function baseResult(c: Ctx, old: ClusterLayout['nodes'][number], target: ClusterLayout['nodes'][number], timeline: number | null): FailoverResult {
  return {
    cluster: c.cluster,
    outcome: 'completed',
    dryRun: c.dryRun,
    reason: c.reason,
    requestedBy: c.requestedBy,
    from: { site: old.site, node: old.name },
    to: { site: target.site, node: target.name },
    topology: { primarySite: old.site, primaryNode: old.name, needsRejoin: [] },
    abortedBecause: null,
    state: '',
    fenced: false,
    dataLoss: null,
    dataLostBytes: null,
    rto: { fromDecisionSeconds: null, fromStartSeconds: null },
    timeline: { before: timeline, after: timeline },
    checkpoints: [],
    traffic: [],
    hooks: [],
    plan: [],
    steps: c.steps.steps.map((s) => ({ ...s })),
  };
}

/** The standby to promote: `to` when given, else the one node in recovery; refusals say why. With the patch, `to` naming the site already promoted resumes. */
function pickTarget(c: Ctx, nodes: PgNodeStatus[]): { node: PgNodeStatus; resume: boolean } {
  const { cluster, layout, input } = c;
  const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
  let candidates = nodes.filter((n) => n.reachable && n.inRecovery === true);
  const finish = (site: string) => `If a failover promoted it and did not finish, \`switchyard failover ${cluster} --to ${site}\` finishes it.`;
  if (input.to !== undefined) {
    if (!layout.sites.includes(input.to))
      throw ApplicationFailure.nonRetryable(`unknown site "${input.to}" for "to"; sites of ${cluster}: ${layout.sites.join(', ')}`, 'ConfigError');
    const want = nodes.find((n) => n.site === input.to)!;
    if (want.reachable && want.inRecovery === false) {
      if (c.v2) {
        if (primaries.length > 1)
          throw refused(
            `cluster ${cluster} has ${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}): a split brain needs a person, not a failover.`,
          );
        return { node: want, resume: true };
      }
      throw refused(
        `${want.node} at ${input.to} is already a primary (timeline ${want.timeline ?? '?'}): there is nothing to fail over to. If a former primary needs rebuilding, run \`switchyard rejoin ${cluster}\`.`,
      );
    }
    candidates = candidates.filter((n) => n.site === input.to);
    if (candidates.length === 0)
      throw refused(
        `${want.node} at ${input.to} cannot be promoted: ${want.reachable ? 'it is not in recovery' : `it is unreachable (${want.error ?? 'no answer'})`}.`,
      );
  }
  if (primaries.length > 1)
    throw refused(
      `cluster ${cluster} has ${primaries.length} primaries (${primaries.map((p) => p.node).join(', ')}): a split brain needs a person, not a failover.`,
    );
  if (candidates.length === 0) {
    const seen = nodes.map((n) => `${n.node}: ${describeNode(n)}`).join('; ');
    if (primaries.length === 1)
      throw refused(
        `no standby to promote: the only reachable primary is ${primaries[0].node} and no node is a reachable standby (${seen}).${c.v2 ? ` ${finish(primaries[0].site)}` : ''}`,
      );
    throw refused(`no reachable standby to promote in cluster ${cluster} (${seen}).`);
  }
  if (candidates.length > 1) throw refused(`several standbys could be promoted (${candidates.map((n) => n.node).join(', ')}): name the site with "to".`);
  return { node: candidates[0], resume: false };
}

/** The old primary's last known position against what the standby has: the data-loss gate's input. */
async function measureLoss(
  c: Ctx,
  oldNode: string,
  fence: PgFenceResult | null,
  oldAtStart: PgNodeStatus,
  standby: PgNodeStatus,
  oldAtStartAt: string,
): Promise<DataLoss> {
  const control = fence?.control?.ok ? fence.control : null;
  const exactOrLive =
    (control && control.state === 'shut down' && control.checkpointLsn) || (oldAtStart.reachable && oldAtStart.inRecovery === false && oldAtStart.currentLsn);
  const last = exactOrLive
    ? null
    : await c.steps
        .run(
          'last-position',
          () => reads.lastPrimaryPosition({ cluster: c.cluster }),
          (r) => r.detail,
        )
        .catch(() => null);
  return judgeLoss({ oldNode, control, oldAtStart, last, standby, oldAtStartAt });
}

interface Forward {
  old: ClusterLayout['nodes'][number];
  target: ClusterLayout['nodes'][number];
  decisionMs: number;
  promoted: { timeline: number | null };
  timelineBefore: number | null;
  loss: DataLoss;
  fenced: boolean;
  decisions: CheckpointOutcome[];
  newServices: ClusterLayout['services'];
  newMaintenance: ClusterLayout['maintenance'][number] | undefined;
  newHooks: ClusterLayout['hooks'];
}

/** Guard, hooks, services, traffic, maintenance off: each failure recorded, the rest still done. */
async function afterPromotion(c: Ctx, f: Forward): Promise<FailoverResult> {
  const { cluster, steps, layout } = c;
  const { target, old } = f;
  const { workflowId } = workflowInfo();
  const failures: string[] = [];
  const hooks: FailoverResult['hooks'] = [];
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
            fencedBy: workflowId,
            intervalSeconds: layout.failover.guardIntervalSeconds,
          }),
        (g) => g.detail,
      )
      .catch((err: unknown) => failures.push(`the guard of ${old.name}: ${messageOf(err as Error)}`));
  }
  // The site's own steps (its afterPromote hooks), in order, each recorded with its output.
  let hooksOk = true;
  for (const h of f.newHooks) {
    if (!hooksOk) {
      steps.skip(`hook:${h.name}`, 'an earlier hook failed');
      continue;
    }
    try {
      const r = await steps.run(
        `hook:${h.name}`,
        () => hookActs(h).runHook({ cluster, site: target.site, hook: h.name }),
        (x) =>
          x.alreadyDone
            ? `${h.host}: already done (its check exited 0)`
            : `${h.host}: exit ${x.exitCode ?? 'none'}${x.stdout.trim() ? `; ${x.stdout.trim().slice(-300)}` : ''}`,
      );
      hooks.push({ hook: h.name, exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr });
      if (r.exitCode !== 0) {
        hooksOk = false;
        const msg = `hook ${h.name} on ${h.host} ${r.timedOut ? 'timed out' : `exited ${r.exitCode ?? 'without status'}`}: ${(r.stderr.trim() || r.stdout.trim()).slice(-300)}`;
        steps.note(`hook:${h.name}`, msg, 'failed');
        failures.push(msg);
      }
    } catch (err) {
      hooksOk = false;
      failures.push(`hook ${h.name}: ${messageOf(err as Error)}`);
    }
  }
  for (const s of f.newServices) {
    await steps
      .run(
        `service-start:${s.site}/${s.service}`,
        () => actions.serviceStart({ cluster, site: s.site, service: s.service }),
        (x) => x.detail,
      )
      .catch((err: unknown) => failures.push(`start ${s.service} at ${s.site}: ${messageOf(err as Error)}`));
  }
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
  if (f.newMaintenance) {
    await steps
      .run(
        `maintenance-off:${target.site}`,
        () => actions.maintenanceSet({ cluster, site: target.site, on: false }),
        (x) => x.detail,
      )
      .catch((err: unknown) => failures.push(`maintenance off at ${target.site}: ${messageOf(err as Error)}`));
  }
  const after = await steps.run(`verify:${target.name}`, () => reads.pgStatus({ cluster, node: target.name }), describeNode).catch(() => null);
  const timelineAfter = after?.timeline ?? f.promoted.timeline;
  const rto = {
    fromDecisionSeconds: trafficOk ? seconds(f.decisionMs, trafficMs) : null,
    fromStartSeconds: trafficOk ? seconds(c.startedMs, trafficMs) : null,
  };
  const state =
    `${target.name} (${target.site}) is primary on timeline ${timelineAfter ?? '?'}; ${old.name} (${old.site}) ${f.fenced ? (c.v2 ? 'is fenced (stopped; a restart comes up read-only)' : 'is fenced (stopped)') : 'was confirmed dead by a person'}${c.v2 ? ', is watched by the guard,' : ''} and needs \`switchyard rejoin ${cluster} --node ${old.name}\`` +
    (failures.length ? `; NOT DONE: ${failures.join('; ')}` : '');
  const result: FailoverResult = {
    ...baseResult(c, old, target, f.timelineBefore),
    topology: {
      primarySite: target.site,
      primaryNode: target.name,
      needsRejoin: [{ node: old.name, site: old.site, reason: `former primary; ${target.name} was promoted to timeline ${timelineAfter ?? '?'}` }],
    },
    state,
    fenced: f.fenced,
    dataLoss: f.loss,
    dataLostBytes: f.loss.bytes,
    rto,
    timeline: { before: f.timelineBefore, after: timelineAfter },
    checkpoints: f.decisions,
    traffic,
    hooks,
  };
  steps.note(
    'result',
    `${state}; RTO ${rto.fromDecisionSeconds ?? '?'} s from the decision to promote, ${rto.fromStartSeconds ?? '?'} s from start; data lost: ${f.loss.bytes === null ? 'unknown' : `${f.loss.bytes} bytes`}`,
    failures.length ? 'failed' : 'done',
  );
  await c.notify(
    failures.length ? 'failover.incomplete' : 'failover.completed',
    `failover of ${cluster}: ${state}; RTO ${rto.fromDecisionSeconds ?? '?'} s; data lost ${f.loss.bytes === null ? 'unknown' : `${f.loss.bytes} bytes`}`,
  );
  result.steps = steps.steps.map((s) => ({ ...s }));
  if (failures.length) {
    throw ApplicationFailure.create({
      message: c.v2
        ? `failover of ${cluster} promoted ${target.name} but did not finish: ${failures.join('; ')}. Fix these, then run \`switchyard failover ${cluster} --to ${target.site}\`: it finds ${target.name} promoted and finishes the steps left (guard, hooks, services, traffic, maintenance).`
        : `failover of ${cluster} promoted ${target.name} but did not finish: ${failures.join('; ')}. Fix these and re-run the failed steps (a new failover run skips what is done).`,
      type: 'FailoverIncomplete',
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

/** Undo, newest first, each best effort; returns the state the cluster was left in, for a person. */
async function undoAll(
  steps: StepLog,
  undo: Undo[],
  s: { old: ClusterLayout['nodes'][number]; target: ClusterLayout['nodes'][number]; fenced: boolean; instanceStopped: boolean },
): Promise<string> {
  const { done, failed } = await runUndo(steps, undo);
  const parts = [`nothing was promoted: ${s.target.name} (${s.target.site}) is still a standby`];
  if (done.length) parts.push(`undone: ${done.join(', ')}`);
  if (failed.length) parts.push(`could not undo: ${failed.join(', ')}`);
  if (!done.length && !failed.length) parts.push(s.fenced ? `${s.old.name} was already down; nothing was changed` : 'nothing was changed');
  if (s.instanceStopped) parts.push(`the EC2 instance of ${s.old.name} is stopped: start it by hand if it should serve`);
  return parts.join('; ');
}

interface PlanInput {
  old: ClusterLayout['nodes'][number];
  target: ClusterLayout['nodes'][number];
  oldStatus: PgNodeStatus;
  targetStatus: PgNodeStatus;
  hostOk: (h: string | null) => boolean;
  oldMaintenance: ClusterLayout['maintenance'][number] | undefined;
  oldServices: ClusterLayout['services'];
  newMaintenance: ClusterLayout['maintenance'][number] | undefined;
  newServices: ClusterLayout['services'];
  newHooks: ClusterLayout['hooks'];
  timelineBefore: number | null;
}

/** Dry run: what a real run would do, from read-only observations. Changes nothing. */
async function planOnly(c: Ctx, p: PlanInput): Promise<FailoverResult> {
  const { cluster, steps, layout } = c;
  const { old, target } = p;
  const plan: PlanStep[] = [{ step: 'lock', target: cluster, action: 'take the cluster lock (refused if another operation runs)' }];
  const unreachable = (h: string) => `skip: ${h} is unreachable now`;
  if (p.oldMaintenance)
    plan.push({
      step: `maintenance-on:${old.site}`,
      target: p.oldMaintenance.host ?? old.site,
      action: p.hostOk(p.oldMaintenance.host) ? 'turn maintenance on' : unreachable(p.oldMaintenance.host ?? '?'),
    });
  for (const s of p.oldServices)
    plan.push({ step: `service-stop:${s.site}/${s.service}`, target: s.host, action: p.hostOk(s.host) ? 'stop the service' : unreachable(s.host) });
  const canFence = p.hostOk(old.sshHost);
  plan.push({
    step: 'fence',
    target: old.name,
    action: canFence
      ? `pg_ctl stop -m fast (${layout.failover.fastStopTimeoutSeconds} s), then -m immediate; confirm it refuses connections (now: ${describeNode(p.oldStatus)})`
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
  const lag =
    p.oldStatus.reachable && p.oldStatus.inRecovery === false
      ? lsnMinus(p.oldStatus.currentLsn, lsnMax(p.targetStatus.receiveLsn, p.targetStatus.replayLsn))
      : null;
  plan.push({
    step: 'data-loss',
    target: target.name,
    action: `compare ${target.name}'s received position (${lsnMax(p.targetStatus.receiveLsn, p.targetStatus.replayLsn) ?? '?'}) with ${old.name}'s last (${lag === null ? 'not readable now' : `${Math.max(0, lag)} bytes behind now`}); ask at accept-data-loss past ${layout.dataLossThresholdBytes} bytes`,
  });
  plan.push({
    step: 'promote',
    target: target.name,
    action: `pg_promote on ${target.name} (timeline ${p.timelineBefore ?? '?'} → next); confirm it takes a write`,
  });
  for (const h of p.newHooks) plan.push({ step: `hook:${h.name}`, target: h.host, action: 'run the site hook' });
  for (const s of p.newServices) plan.push({ step: `service-start:${s.site}/${s.service}`, target: s.host, action: 'start the service' });
  const traffic = await Promise.all(
    layout.traffic.map((d) =>
      steps.run(
        `traffic:${d.name}`,
        () => reads.trafficRead({ cluster, driver: d.name }),
        (t) => `points at ${t.site ?? 'no site'} (${t.target ?? '?'})`,
      ),
    ),
  );
  for (const t of traffic)
    plan.push({
      step: `traffic:${t.driver}`,
      target: t.driver,
      action: t.site === target.site ? `already on ${target.site}` : `move from ${t.site ?? 'nowhere'} to ${target.site}`,
    });
  if (p.newMaintenance) plan.push({ step: `maintenance-off:${target.site}`, target: p.newMaintenance.host ?? target.site, action: 'turn maintenance off' });
  steps.note('plan', plan.map((s) => `${s.step} → ${s.action}`).join('; '));
  return {
    ...baseResult(c, old, target, p.timelineBefore),
    outcome: 'planned',
    state: 'dry run: nothing was changed',
    traffic: traffic.map((t) => ({ driver: t.driver, site: t.site, target: t.target, changed: false })),
    plan,
  };
}
