/**
 * switchover: the planned move with zero data loss (the planned half of every runbook in
 * ../shared/runbooks). Steps:
 *
 *   lock → preflight (both sites up; the target streams from the primary with lag below the bound)
 *   → optional `start-switchover` checkpoint (a maintenance window) → write probes start →
 *   maintenance on, services stopped on the old site → the old primary stopped cleanly →
 *   the target replays up to the old primary's shutdown checkpoint (pg_controldata) → promote →
 *   site hooks → traffic moved, services started, maintenance off (clients are back as soon as the
 *   new primary takes writes) → the old primary follows the new one (no rewind needed after a clean
 *   stop; verified by it streaming, else a rejoin) → result with the write downtime the probes
 *   measured.
 *
 * Runs recorded before the `switchover-traffic-first` patch made the old primary follow before
 * traffic moved; replaying them keeps that order.
 *
 * Before promotion an abort puts everything back as it was (old primary started again, services
 * and maintenance as before; traffic was not moved yet). After it, the run only goes forward.
 */
import { ApplicationFailure, CancellationScope, executeChild, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WriteProbeSummary } from '../contract/observations';
import { Checkpoints, checkpointNotices, notApproved, type CheckpointOutcome } from './lib/checkpoint';
import { withClusterLock } from './lib/with-cluster-lock';
import { actions, Aborted, describeNode, notifyVia, promotion, reads, refused, runbookInput, runUndo, seconds, type Undo } from './lib/runbook';
import { hookActs, trafficActs } from './lib/site-activities';
import { maintenanceOff, maintenanceOn, startServices, stopServices } from './lib/site-steps';
import { messageOf, StepLog } from './lib/steps';
import type { PlanStep, StepRecord } from '../contract/messages';
import type { rejoin as rejoinWorkflow, RejoinResult } from './rejoin';
import { SWITCHOVER_WAIT, writeProbeOptions } from './lib/activity-options';

export interface SwitchoverInput {
  cluster: string;
  /** The site to make primary. */
  to: string;
  requestedBy: string;
  dryRun?: boolean;
  /** Set by a parent runbook (failback) that holds the cluster's lock; refused for a top-level run. */
  underParentLock?: boolean;
}

export const SWITCHOVER_CHECKPOINTS = ['start-switchover'] as const;

export interface SwitchoverResult {
  cluster: string;
  outcome: 'completed' | 'aborted' | 'planned';
  from: { site: string; node: string };
  to: { site: string; node: string };
  abortedBecause: string | null;
  state: string;
  /** Write downtime measured by the run's own probes: first refused write → first accepted one. */
  writeDowntimeMs: number | null;
  probe: WriteProbeSummary | null;
  /** Where the old primary's WAL ended (its shutdown checkpoint) and where the target replayed to. */
  shutdownCheckpointLsn: string | null;
  replayedLsn: string | null;
  timeline: { before: number | null; after: number | null };
  /** How the old primary became a standby: following directly, or through a rejoin (rewind/basebackup). */
  oldPrimary: { node: string; streaming: boolean; via: 'follow' | 'rejoin' | null; rejoin: RejoinResult | null };
  checkpoints: CheckpointOutcome[];
  traffic: { driver: string; site: string | null; changed: boolean | undefined }[];
  durationSeconds: number;
  plan: PlanStep[];
  steps: StepRecord[];
}

const waits = proxyActivities<Activities>(SWITCHOVER_WAIT);

type OldPrimary = Omit<SwitchoverResult['oldPrimary'], 'node'>;

/** What a switchover did, as far as it got; what it does not name is what a run that changed nothing would say. */
interface SwitchoverOutcome {
  outcome: SwitchoverResult['outcome'];
  state: string;
  abortedBecause?: string;
  durationSeconds: number;
  /** After a promotion: the timelines, where the old primary's WAL ended and how it follows. */
  timeline?: SwitchoverResult['timeline'];
  shutdownCheckpointLsn?: string;
  replayedLsn?: string | null;
  oldPrimary?: OldPrimary;
  probe?: WriteProbeSummary | null;
  checkpoints?: CheckpointOutcome[];
  traffic?: SwitchoverResult['traffic'];
  plan?: PlanStep[];
}

/** The one place a switchover's result is built, with the step log as it is now: every exit passes its outcome here. */
function switchoverResult(
  run: Pick<SwitchoverResult, 'cluster' | 'from' | 'to'> & { timelineBefore: number | null; steps: StepLog },
  o: SwitchoverOutcome,
): SwitchoverResult {
  return {
    cluster: run.cluster,
    from: run.from,
    to: run.to,
    outcome: o.outcome,
    abortedBecause: o.abortedBecause ?? null,
    state: o.state,
    writeDowntimeMs: o.probe?.downtimeMs ?? null,
    probe: o.probe ?? null,
    shutdownCheckpointLsn: o.shutdownCheckpointLsn ?? null,
    replayedLsn: o.replayedLsn ?? null,
    timeline: o.timeline ?? { before: run.timelineBefore, after: run.timelineBefore },
    oldPrimary: { node: run.from.node, ...(o.oldPrimary ?? { streaming: false, via: null, rejoin: null }) },
    checkpoints: o.checkpoints ?? [],
    traffic: o.traffic ?? [],
    durationSeconds: o.durationSeconds,
    plan: o.plan ?? [],
    steps: run.steps.snapshot(),
  };
}

/** Hooks and traffic drivers at once after the promotion; the old primary follows while the services start. */
export const SWITCHOVER_PARALLEL_PATCH = 'switchover-parallel';

export async function switchover(input: SwitchoverInput): Promise<SwitchoverResult> {
  const { cluster, requestedBy, dryRun, startProof } = runbookInput('switchover', input);
  const steps = new StepLog('switchover', cluster);
  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.sites.join(', ')}; ${l.traffic.length} traffic drivers`,
  );
  const to = typeof input.to === 'string' ? input.to : '';
  const target = layout.nodes.find((n) => n.site === to);
  if (!target)
    throw ApplicationFailure.nonRetryable(
      `switchover needs "to": one of the sites of ${cluster} (${layout.sites.join(', ')}), got ${JSON.stringify(input.to)}`,
      'ConfigError',
    );
  const { workflowId } = workflowInfo();
  const notify = notifyVia(layout.notify, cluster, workflowId);
  const startedMs = Date.now();

  const body = async (): Promise<SwitchoverResult> => {
    // ---- preflight ------------------------------------------------------------------------------
    const nodes = await Promise.all(layout.nodes.map((n) => steps.run(`preflight:${n.name}`, () => reads.pgStatus({ cluster, node: n.name }), describeNode)));
    const tStatus = nodes.find((n) => n.node === target.name)!;
    const primaries = nodes.filter((n) => n.reachable && n.inRecovery === false);
    if (tStatus.reachable && tStatus.inRecovery === false)
      throw refused(`${target.name} at ${to} is already the primary of ${cluster}: nothing to switch over.`);
    if (primaries.length !== 1)
      throw refused(`a switchover needs exactly one primary and both sites up; seen: ${nodes.map((n) => `${n.node}: ${describeNode(n)}`).join('; ')}`);
    const oStatus = primaries[0];
    const old = layout.nodes.find((n) => n.name === oStatus.node)!;
    if (!tStatus.reachable) throw refused(`${target.name} at ${to} is unreachable (${tStatus.error ?? 'no answer'}): a switchover needs both sites up.`);
    if (!(tStatus.walReceiver?.status === 'streaming' && tStatus.walReceiver.senderHost === old.host)) {
      const receiver = tStatus.walReceiver ? `${tStatus.walReceiver.status} from ${tStatus.walReceiver.senderHost ?? '?'}` : 'not running';
      throw refused(`${target.name} does not stream from ${old.name} (WAL receiver ${receiver}): rejoin it first.`);
    }
    const lag = await steps.run(
      `lag:${target.name}`,
      () => reads.pgLag({ cluster, primary: old.name, standby: target.name }),
      (l) => `${l.lagBytes ?? '?'} bytes, ${l.lagSeconds ?? '?'} s behind`,
    );
    if (lag.lagBytes === null || lag.lagBytes > layout.maxLagBytes) {
      throw refused(
        `standby ${target.name} is too far behind ${old.name} for a switchover: ` +
          `${lag.lagBytes === null ? 'its position is unknown' : `${lag.lagBytes} bytes`} (bound: postgres.maxLagBytes = ${layout.maxLagBytes}). ` +
          `Wait until it catches up, or find out why it lags.`,
      );
    }
    const timelineBefore = oStatus.timeline ?? null;
    const oldSite = old.site;
    const run = { cluster, from: { site: oldSite, node: old.name }, to: { site: to, node: target.name }, timelineBefore, steps };
    steps.note('plan', `switch ${cluster} over from ${oldSite} (${old.name}) to ${to} (${target.name}); ${target.name} is ${lag.lagBytes} bytes behind`);
    const oldMaintenance = layout.maintenance.find((m) => m.site === oldSite && m.host);
    const newMaintenance = layout.maintenance.find((m) => m.site === to && m.host);
    const oldServices = layout.services.filter((s) => s.site === oldSite);
    const newServices = layout.services.filter((s) => s.site === to);

    // Clients come back once traffic points at the new primary; the old primary follows afterwards.
    const trafficFirst = patched('switchover-traffic-first');
    if (dryRun) {
      const follow: PlanStep = { step: 'follow', target: old.name, action: `standby of ${target.name} (slot ${old.slot}); a rejoin if it cannot stream` };
      const plan: PlanStep[] = [
        { step: 'lock', target: cluster, action: 'take the cluster lock' },
        ...(layout.switchover.confirmStart ? [{ step: 'checkpoint:start-switchover', target: cluster, action: 'wait for a person (maintenance window)' }] : []),
        ...(oldMaintenance ? [{ step: `maintenance-on:${oldSite}`, target: oldMaintenance.host ?? oldSite, action: 'turn maintenance on' }] : []),
        ...oldServices.map((s) => ({ step: `service-stop:${s.site}/${s.service}`, target: s.host, action: 'stop the service' })),
        { step: 'stop-old-primary', target: old.name, action: `pg_ctl stop -m fast; read its shutdown checkpoint (pg_controldata)` },
        {
          step: 'replay',
          target: target.name,
          action: `wait until it replayed up to that checkpoint (now ${lag.lagBytes} bytes behind; at most ${layout.switchover.replayTimeoutSeconds} s)`,
        },
        { step: 'promote', target: target.name, action: `pg_promote (timeline ${timelineBefore ?? '?'} → next)` },
        ...layout.hooks.filter((h) => h.site === to).map((h) => ({ step: `hook:${h.name}`, target: h.host, action: 'run the site hook' })),
        ...(trafficFirst ? [] : [follow]),
        ...layout.traffic.map((d) => ({ step: `traffic:${d.name}`, target: d.name, action: `move to ${to}` })),
        ...newServices.map((s) => ({ step: `service-start:${s.site}/${s.service}`, target: s.host, action: 'start the service' })),
        { step: 'maintenance-off', target: `${to}, ${oldSite}`, action: 'turn maintenance off on both sites' },
        ...(trafficFirst ? [follow] : []),
      ];
      steps.note('plan', plan.map((p) => `${p.step} → ${p.action}`).join('; '));
      return switchoverResult(run, { outcome: 'planned', state: 'dry run: nothing was changed', durationSeconds: 0, plan });
    }

    const decisions: CheckpointOutcome[] = [];
    const checkpoints = new Checkpoints(steps, layout.checkpoints, requestedBy, SWITCHOVER_CHECKPOINTS, checkpointNotices(notify), startProof);
    await notify('switchover.started', `switchover of ${cluster} from ${oldSite} to ${to} started by ${requestedBy} (${workflowId})`);
    if (layout.switchover.confirmStart) {
      const d = await checkpoints.wait('start-switchover', {
        prompt:
          `Switch ${cluster} over from ${oldSite} to ${to}? Writes stop for the few seconds it takes. ` +
          `Approve at the start of the maintenance window; reject to change nothing.`,
        safety: false,
      });
      decisions.push(d);
      if (d.decision !== 'approve') {
        return switchoverResult(run, {
          outcome: 'aborted',
          abortedBecause: notApproved(d),
          state: 'nothing was changed',
          oldPrimary: { streaming: true, via: null, rejoin: null },
          checkpoints: decisions,
          durationSeconds: seconds(startedMs, Date.now()),
        });
      }
    }

    // The run's own write probes: first refused write → first accepted one on the target.
    const probeScope = new CancellationScope();
    const probeActs = proxyActivities<Activities>(writeProbeOptions(layout.switchover.replayTimeoutSeconds));
    const probing = probeScope.run(() =>
      probeActs.writeProbeLoop({ cluster, expectNode: target.name, maxSeconds: layout.switchover.replayTimeoutSeconds + 300, intervalMs: 100 }),
    );
    probing.catch(() => undefined);

    const undo: Undo[] = [];
    let promoting = false;
    try {
      if (oldMaintenance) await maintenanceOn(steps, cluster, oldMaintenance, undo);
      await stopServices(steps, cluster, oldServices, undo);
      const stop = await steps.run(
        'stop-old-primary',
        () => actions.pgFence({ cluster, node: old.name, fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds }),
        (f) => f.detail,
      );
      if (stop.changed) undo.push({ what: `start PostgreSQL ${old.name} again`, run: async () => (await actions.pgStart({ cluster, node: old.name })).detail });
      const ckpt = stop.control?.ok && stop.control.state === 'shut down' ? stop.control.checkpointLsn : null;
      if (!stop.fenced || !ckpt) {
        throw refused(
          `${old.name} did not shut down cleanly (${stop.detail}): ` +
            `without its shutdown checkpoint a switchover cannot prove that no acknowledged commit is lost.`,
        );
      }
      const replay = await steps.run(
        'replay',
        () => waits.pgWaitReplay({ cluster, node: target.name, lsn: ckpt, timeoutSeconds: layout.switchover.replayTimeoutSeconds }),
        (r) => `${r.reached ? 'replayed' : 'NOT replayed'} up to ${ckpt} (at ${r.replayLsn ?? '?'}) in ${Math.round(r.waitedMs / 100) / 10} s`,
      );
      if (!replay.reached)
        throw new Aborted(
          `${target.name} did not replay up to ${old.name}'s shutdown checkpoint ${ckpt} ` +
            `within ${layout.switchover.replayTimeoutSeconds} s (it is at ${replay.replayLsn ?? '?'})`,
        );

      // ---- promote: from here the run only goes forward ---------------------------------------
      promoting = true;
      const promoted = await steps.run(
        'promote',
        () => promotion.pgPromote({ cluster, node: target.name, waitSeconds: 60 }),
        (p) => p.detail,
      );
      const probe1 = await steps.run(
        `write-probe:${target.name}`,
        () => promotion.pgWriteProbe({ cluster, node: target.name }),
        (p) => p.detail,
      );
      if (!probe1.ok) throw ApplicationFailure.nonRetryable(`${target.name} was promoted but refuses writes: ${probe1.detail}`, 'PromotionUnconfirmed');

      const failures: string[] = [];
      const runHooks = async () => {
        for (const h of layout.hooks.filter((x) => x.site === to)) {
          const r = await steps
            .run(
              `hook:${h.name}`,
              () => hookActs(h).runHook({ cluster, site: to, hook: h.name }),
              (x) => `${h.host}: ${x.alreadyDone ? 'already done (check exit 0)' : `exit ${x.exitCode ?? 'none'}`}`,
            )
            .catch((err: unknown) => {
              failures.push(`hook ${h.name}: ${messageOf(err as Error)}`);
              return null;
            });
          if (r && r.exitCode !== 0) {
            failures.push(`hook ${h.name} on ${h.host} exited ${r.exitCode ?? 'without status'}: ${(r.stderr.trim() || r.stdout.trim()).slice(-300)}`);
            break;
          }
        }
      };
      // Since SWITCHOVER_PARALLEL_PATCH the hooks and every traffic driver move at once, and the old
      // primary follows while the services start: clients are back sooner, the run ends sooner.
      const parallel = trafficFirst && patched(SWITCHOVER_PARALLEL_PATCH);
      if (!parallel) await runHooks();

      // The old primary follows the new one: it shut down cleanly, so no rewind should be needed.
      let follow: OldPrimary = { streaming: false, via: null, rejoin: null };
      const followOld = async () => {
        follow = await followNewPrimary(cluster, steps, layout, old, target, requestedBy).catch((err: unknown) => {
          failures.push(`${old.name} does not follow ${target.name}: ${messageOf(err as Error)}`);
          return { streaming: false, via: null, rejoin: null };
        });
      };
      const startNewServices = () => startServices(steps, cluster, newServices, failures);
      const traffic: SwitchoverResult['traffic'] = [];
      const moveOne = async (d: (typeof layout.traffic)[number]) => {
        const t = await steps
          .run(
            `traffic:${d.name}`,
            () => trafficActs(d).trafficMove({ cluster, driver: d.name, site: to }),
            (x) => `${x.changed ? 'moved to' : 'already on'} ${x.site} (${x.target ?? '?'})`,
          )
          .catch((err: unknown) => {
            failures.push(`traffic driver ${d.name}: ${messageOf(err as Error)}`);
            return null;
          });
        return { driver: d.name, site: t?.site ?? null, changed: t?.changed };
      };
      const moveTraffic = async () => {
        if (parallel) traffic.push(...(await Promise.all(layout.traffic.map(moveOne))));
        else for (const d of layout.traffic) traffic.push(await moveOne(d));
      };
      const bothMaintenanceOff = async () => {
        for (const m of [newMaintenance, oldMaintenance]) if (m) await maintenanceOff(steps, cluster, m.site, failures);
      };
      if (parallel) {
        await Promise.all([runHooks(), moveTraffic()]);
        await Promise.all([startNewServices().then(bothMaintenanceOff), followOld()]);
      } else if (trafficFirst) {
        await moveTraffic();
        await startNewServices();
        await bothMaintenanceOff();
        await followOld();
      } else {
        await followOld();
        await startNewServices();
        await moveTraffic();
        await bothMaintenanceOff();
      }
      const probe = await steps
        .run(
          'write-downtime',
          () => probing,
          (p) => p.detail,
        )
        .catch((err: unknown) => {
          steps.note('write-downtime', `the write probes did not report: ${messageOf(err as Error)}`, 'failed');
          return null;
        });
      const followed = follow.streaming ? `streams from it${follow.via === 'rejoin' ? ' (after a rejoin)' : ''}` : 'is NOT a streaming standby yet';
      const state =
        `${target.name} (${to}) is primary on timeline ${promoted.timeline ?? '?'}; ${old.name} (${oldSite}) ${followed}` +
        (failures.length ? `; NOT DONE: ${failures.join('; ')}` : '');
      const durationSeconds = seconds(startedMs, Date.now());
      steps.note('result', `${state}; write downtime ${probe?.downtimeMs ?? '?'} ms`, failures.length ? 'failed' : 'done');
      await notify(
        failures.length ? 'switchover.incomplete' : 'switchover.completed',
        `switchover of ${cluster}: ${state}; write downtime ${probe?.downtimeMs ?? '?'} ms`,
      );
      const result = switchoverResult(run, {
        outcome: 'completed',
        state,
        probe,
        shutdownCheckpointLsn: ckpt,
        replayedLsn: replay.replayLsn,
        timeline: { before: timelineBefore, after: promoted.timeline },
        oldPrimary: follow,
        checkpoints: decisions,
        traffic,
        durationSeconds,
      });
      if (failures.length) {
        throw ApplicationFailure.create({
          message: `switchover of ${cluster} promoted ${target.name} but did not finish: ${failures.join('; ')}`,
          type: 'SwitchoverIncomplete',
          nonRetryable: true,
          details: [result],
        });
      }
      return result;
    } catch (err) {
      if (promoting) throw err;
      probeScope.cancel();
      const because = err instanceof Aborted ? err.because : messageOf(err as Error);
      const state = await CancellationScope.nonCancellable(async () => {
        const { done, failed } = await runUndo(steps, undo);
        const left = [
          `nothing was promoted: ${old.name} (${oldSite}) is the primary, ${target.name} a standby; traffic was not moved`,
          done.length ? `undone: ${done.join(', ')}` : 'nothing needed undoing',
        ];
        if (failed.length) left.push(`could not undo: ${failed.join(', ')}`);
        const text = left.join('; ');
        await notify('switchover.aborted', `switchover of ${cluster} stopped before promotion: ${because}. ${text}`);
        return text;
      });
      if (!(err instanceof Aborted)) {
        if (isCancellation(err)) throw err;
        const type = err instanceof ApplicationFailure && err.type ? err.type : 'SwitchoverStopped';
        throw ApplicationFailure.create({ message: `${because}. State: ${state}`, type, nonRetryable: true });
      }
      return switchoverResult(run, {
        outcome: 'aborted',
        abortedBecause: because,
        state,
        checkpoints: decisions,
        durationSeconds: seconds(startedMs, Date.now()),
      });
    }
  };
  if (dryRun) return body();
  return withClusterLock(cluster, 'switchover', requestedBy, steps, body, { underParentLock: input.underParentLock === true });
}

/** The old primary becomes a standby of the new one; if it cannot stream, a rejoin (child run) rebuilds it. */
async function followNewPrimary(
  cluster: string,
  steps: StepLog,
  layout: { maxLagBytes: number; rejoin: { catchUpTimeoutSeconds: number } },
  old: { name: string; slot: string },
  target: { name: string },
  requestedBy: string,
): Promise<OldPrimary> {
  await steps.run(
    'follow:slot',
    () => actions.pgEnsureSlot({ cluster, primary: target.name, slot: old.slot }),
    (r) => r.detail,
  );
  await steps.run(
    'follow:configure',
    () => actions.pgConfigureStandby({ cluster, node: old.name, primary: target.name }),
    (r) => r.detail,
  );
  await steps.run(
    'follow:start',
    () => actions.pgStart({ cluster, node: old.name }),
    (r) => r.detail,
  );
  const caught = await steps.run(
    'follow:streaming',
    () =>
      waits.pgWaitStreaming({
        cluster,
        node: old.name,
        primary: target.name,
        maxLagBytes: layout.maxLagBytes,
        timeoutSeconds: Math.min(120, layout.rejoin.catchUpTimeoutSeconds),
      }),
    (r) => r.detail,
  );
  if (caught.streaming) return { streaming: true, via: 'follow', rejoin: null };
  steps.note('follow', `${old.name} did not stream after a clean stop (${caught.detail}); rejoining it`, 'failed');
  const r = await steps.run(
    'follow:rejoin',
    () =>
      executeChild<typeof rejoinWorkflow>('rejoin', {
        workflowId: `${workflowInfo().workflowId}-rejoin-${old.name}`,
        args: [{ cluster, node: old.name, requestedBy, method: 'auto', underParentLock: true }],
      }),
    (x) => `${x.method ?? 'nothing'}: ${x.node} streams from ${x.primary.node}`,
  );
  return { streaming: true, via: 'rejoin', rejoin: r };
}
