/**
 * watch: one long-running workflow per cluster. Every interval it takes the readiness reads that
 * matter for availability in one probe (watchObserve: each node's status, a write on the primary,
 * the standby's lag, the hosts over SSH, the traffic drivers, the fence markers, the backups) and,
 * when no node answers the worker as the primary, asks the other sites' vantage hosts whether
 * they see it either (sites.<site>.vantage), so that a partition between the worker and one site
 * is not taken for that site's death.
 *
 * After `failures` probes in a row in which the primary is gone as seen from every vantage point,
 * it notifies and stages a failover (`requestedBy: "watch"`, the evidence as its reason): that run
 * fences what it can and waits for a person, who only approves; with `failover.automatic` it may
 * go on alone when it fenced the old primary itself and the data lost is exact and within the
 * threshold, and after such a failover no second one is automatic until a person acknowledges it
 * (`switchyard watch ack`) or the cool-down passed (anti-flapping). It never stages a second
 * failover for the same outage, nor one while a runbook holds the cluster lock, and says so.
 * Warnings that need a person but no failover are incidents: notified once when they start and
 * once when they end.
 *
 * One watch per cluster (its workflow id is fixed); it continues as new to keep its history
 * short, carrying what it knows, and keeps its anti-flapping state in its memo so that a watch
 * started again after a stop still knows the last automatic failover.
 */
import {
  condition,
  continueAsNew,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WatchObservations } from '../contract/readiness';
import {
  ANTI_FLAP_MEMO,
  watchAckSignal,
  watchStatusQuery,
  watchStopSignal,
  type AntiFlap,
  type WatchInput,
  type WatchStatus,
  type WatchVerdict,
} from '../contract/watch';
import { durationSeconds } from '../topology/duration';
import { READ, WATCH_PROBE } from './lib/activity-options';
import { notifyVia } from './lib/runbook';
import { SA_VERDICT } from './lib/search-attributes';
import { messageOf, StepLog } from './lib/steps';
import { watchSettings } from './lib/watch-input';
import { automaticAllowed, judge, RETURNED_PREFIX, updateIncidents, type Judgement } from './lib/watch-assess';
import { recordFenceOnReturn, recordWatchReport } from './lib/metrics';
import { watchV1 } from './watch-v1';
import type { failover as failoverWorkflow } from './failover';

/** The watch with one probe per interval, vantage points, incidents and automatic mode. */
export const WATCH_OBSERVE_PATCH = 'watch-observe';

const reads = proxyActivities<Activities>(READ);
const probe = proxyActivities<Activities>(WATCH_PROBE);

/** The hosts, traffic drivers, fence markers and backups are read at least this often (every probe when the interval is longer). */
const FULL_EVERY_MS_V1 = 10_000;
/**
 * Since WATCH_SPREAD_PATCH: every 30 s. They change on the scale of minutes (a backup, a host
 * lost), and at 200 clusters the logins, listings and store reads every 10 s were most of the
 * load on the hosts and the store; the availability reads stay every interval.
 */
const FULL_EVERY_MS = 30_000;

/**
 * Watches started together (a bulk start, a restarted fleet) would otherwise probe in the same
 * instant every interval: after its first probe a new watch waits once a random part of one
 * interval longer (the workflow's seeded random, so replay takes the same wait), and so each
 * keeps its own phase, continued as new or not.
 */
export const WATCH_SPREAD_PATCH = 'watch-spread';

/** The least wait between two probes, however long the last one took. */
const MIN_WAIT_MS = 250;

const NO_ANTI_FLAP: AntiFlap = { last: null, ackedBy: null, ackedAt: null };

export async function watch(input: WatchInput): Promise<{ stoppedBy: string; antiFlap?: AntiFlap }> {
  // Runs recorded before this version replay the first watch throughout.
  if (!patched(WATCH_OBSERVE_PATCH)) return watchV1(input);
  const { cluster, workflowId, everySeconds, failuresToStage, ticksPerRun, carry } = watchSettings(input);
  const steps = new StepLog('watch', cluster);

  const status: WatchStatus = {
    cluster,
    everySeconds,
    failuresToStage,
    since: carry.since,
    ticks: carry.ticks,
    verdict: 'starting',
    primary: carry.primary,
    consecutiveFailures: carry.consecutiveFailures,
    confirmedFailures: carry.confirmedFailures ?? carry.consecutiveFailures,
    lastProbeAt: null,
    probes: [],
    vantage: [],
    staged: carry.staged,
    incidents: carry.incidents ?? [],
    formerPrimaries: [],
    // Filled in once the layout is read.
    automatic: { enabled: false, coolDownSeconds: 0, antiFlap: carry.antiFlap ?? NO_ANTI_FLAP },
    last: input.carry ? 'continued' : 'started',
  };
  // Answered from the start (signals wait for their handlers, registered once the anti-flapping state is known).
  setHandler(watchStatusQuery, () => JSON.parse(JSON.stringify(status)) as WatchStatus);

  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) =>
      `${l.nodes.map((n) => n.name).join(', ')}; every ${everySeconds} s, a failover staged after ${failuresToStage} failed probes; ` +
      `vantage hosts: ${(l.vantages ?? []).map((v) => `${v.host} (${v.site})`).join(', ') || 'none (the worker alone judges)'}; ` +
      `automatic mode ${l.failover.automatic ? `on (cool-down ${l.failover.automaticCoolDown ?? '1h'})` : 'off'}`,
  );
  const automaticEnabled = layout.failover.automatic === true;
  const coolDownSeconds = durationSeconds(layout.failover.automaticCoolDown ?? '1h');
  const notify = notifyVia(layout.notify, cluster, workflowId);
  status.automatic.enabled = automaticEnabled;
  status.automatic.coolDownSeconds = coolDownSeconds;

  // A watch started again (not continued) takes the anti-flapping state its previous run kept.
  let antiFlap: AntiFlap = carry.antiFlap ?? NO_ANTI_FLAP;
  if (!input.carry) {
    const prev = await steps
      .run(
        'anti-flap',
        () => reads.watchPreviousAntiFlap({ workflowId, withinSeconds: coolDownSeconds }),
        (p) => p.detail,
      )
      .catch(() => null);
    if (prev?.antiFlap) antiFlap = prev.antiFlap;
  }

  let replaced = carry.replaced ?? null;
  const keepAntiFlap = (a: AntiFlap) => {
    antiFlap = a;
    status.automatic.antiFlap = a;
    upsertMemo({ [ANTI_FLAP_MEMO]: a });
  };
  keepAntiFlap(antiFlap);

  const say = (name: string, detail: string, state: 'done' | 'failed' = 'done') => {
    status.last = detail;
    steps.note(name, detail, state);
  };
  // The search attribute follows the verdict (status.verdict starts as 'starting', never upserted).
  const showVerdict = (v: WatchVerdict) => {
    if (v !== status.verdict) upsertSearchAttributes([{ key: SA_VERDICT, value: v }]);
    status.verdict = v;
  };

  let stoppedBy: string | null = null;
  setHandler(watchStopSignal, (s) => void (stoppedBy = typeof s?.by === 'string' && s.by ? s.by : 'someone'));
  setHandler(watchAckSignal, (a) => {
    const by = typeof a?.by === 'string' && a.by ? a.by : 'someone';
    if (!antiFlap.last) return say('ack', `${by} acknowledged, but no automatic failover waits for an acknowledgement`);
    if (antiFlap.ackedBy) return say('ack', `${by} acknowledged ${antiFlap.last.workflowId}, already acknowledged by ${antiFlap.ackedBy}`);
    keepAntiFlap({ ...antiFlap, ackedBy: by, ackedAt: new Date().toISOString() });
    say(
      'ack',
      `${by} acknowledged the automatic failover ${antiFlap.last.workflowId}${a?.comment ? ` (${String(a.comment)})` : ''}: the next failover may be automatic again`,
    );
  });

  // Why nothing was staged is said once per cause (the staged run, the lock's holder), not every few probes.
  const told = new Set<string>();
  const stage = async (j: Judgement) => {
    if (status.staged) {
      if (told.has(status.staged.workflowId)) return;
      told.add(status.staged.workflowId);
      say(
        'not-staged',
        `the primary is gone (${status.confirmedFailures} probes), but failover ${status.staged.workflowId} was staged for this outage at ${status.staged.at}: not staging another`,
      );
      return;
    }
    const holder = await reads.watchLockHolder({ cluster }).catch((err: Error) => `unknown (${messageOf(err)})`);
    if (holder) {
      const who =
        typeof holder === 'string'
          ? holder
          : `${holder.operation} ${holder.workflowId}${holder.requestedBy ? ` started by ${holder.requestedBy}` : ''} since ${holder.since}`;
      const key = typeof holder === 'string' ? 'lock-unknown' : holder.workflowId;
      if (!told.has(key)) say('not-staged', `the primary is gone, but the cluster lock is held by ${who}: not staging a failover while that runs`, 'failed');
      told.add(key);
      return;
    }
    const auto = automaticAllowed(cluster, automaticEnabled, coolDownSeconds, antiFlap, Date.now());
    const id = `failover-${cluster}-watch-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}`;
    const reason = `watch: ${j.why}; ${status.confirmedFailures} probes ${everySeconds} s apart`;
    const child = await startChild<typeof failoverWorkflow>('failover', {
      workflowId: id,
      args: [{ cluster, requestedBy: 'watch', reason, staged: { by: workflowId, automatic: auto.allowed, why: auto.why } }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    const at = new Date().toISOString();
    status.staged = { workflowId: child.workflowId, at, automatic: auto.allowed };
    if (auto.allowed) keepAntiFlap({ last: { workflowId: id, at }, ackedBy: null, ackedAt: null });
    // How it ends goes to the log (a run that continued as new no longer follows it).
    void child.result().then(
      () => say('staged-ended', `failover ${id} ended`),
      (err: Error) => say('staged-ended', `failover ${id} ended: ${messageOf(err)}`, 'failed'),
    );
    const mode = auto.allowed
      ? `automatic: it goes on without a person only if it fences ${status.primary ?? 'the old primary'} itself and the data lost is exact and within the threshold`
      : `a person decides (${auto.why})`;
    say('staged', `failover ${id} staged, ${mode}: ${reason}`);
    showVerdict('staged');
    if (automaticEnabled && !auto.allowed)
      await notify('watch.automatic-refused', `automatic failover of ${cluster} refused: ${auto.why}; failover ${id} waits for a person`);
    await notify(
      'watch.failover-staged',
      `the primary of ${cluster} is gone (${status.confirmedFailures} probes ${everySeconds} s apart): failover ${id} staged, ${auto.allowed ? 'automatic' : 'waiting for a person'}`,
      // The link goes to the staged run, where a person approves.
      { workflowId: id, watch: workflowId },
    );
  };

  // Availability every interval; the hosts, traffic, fences and backups at least every FULL_EVERY_MS.
  let lastFull: Pick<WatchObservations, 'ssh' | 'traffic' | 'fences' | 'backups'> | null = null;
  let lastFullMs = 0;
  const spread = patched(WATCH_SPREAD_PATCH);
  const fullEveryMs = spread ? FULL_EVERY_MS : FULL_EVERY_MS_V1;
  // After the primary changed or came back, everything is read at the next probe (traffic, fences moved with it).
  let readAllNext = false;
  for (let tick = 0; tick < ticksPerRun; tick++) {
    const tickStartMs = Date.now();
    const full: boolean = lastFull === null || readAllNext || tickStartMs - lastFullMs >= fullEveryMs - MIN_WAIT_MS;
    readAllNext = false;
    const read: WatchObservations | string = await probe.watchObserve({ cluster, full }).catch((err: Error) => messageOf(err));
    let obs = read;
    if (typeof read !== 'string') {
      if (read.full !== false) {
        lastFull = { ssh: read.ssh, traffic: read.traffic, fences: read.fences, backups: read.backups };
        lastFullMs = tickStartMs;
      } else if (lastFull) obs = { ...read, ...lastFull };
    }
    status.ticks++;
    status.lastProbeAt = new Date().toISOString();
    if (typeof obs === 'string') {
      // Our own probe failed: nothing is known, so nothing counts either way.
      say('probe-failed', `the probe itself failed: ${obs}`, 'failed');
    } else {
      recordWatchReport(cluster);
      const j = judge(layout, obs, status.primary, status.lastProbeAt, replaced);
      status.probes = j.probes;
      status.formerPrimaries = j.formerPrimaries;
      if (j.failing) status.vantage = obs.vantage.map((v) => ({ node: v.node, from: v.from, verdict: v.verdict, detail: v.detail }));
      if (j.primaries.length === 1) {
        const p = j.primaries[0];
        if (status.primary !== p || status.consecutiveFailures > 0) readAllNext = true;
        if (status.primary && status.primary !== p) {
          replaced = { node: status.primary, newPrimary: p, since: status.lastProbeAt };
          say('primary-moved', `${p} is the primary now; the former primary ${status.primary} needs \`switchyard rejoin ${cluster} --node ${status.primary}\``);
        } else if (status.consecutiveFailures > 0)
          say('primary-answers', `${p} answers as the primary again after ${status.consecutiveFailures} failed probe(s)`);
        else if (status.primary !== p) say('primary', `${p} is the primary`);
        // A replaced primary that follows again is a standby, no longer a former primary.
        if (replaced && obs.nodes.some((n) => n.node === replaced!.node && n.reachable && n.inRecovery && n.walReceiver?.status === 'streaming'))
          replaced = null;
        status.primary = p;
        status.consecutiveFailures = 0;
        status.confirmedFailures = 0;
        // The outage is over (the staged failover promoted, or the old primary came back).
        status.staged = null;
      } else if (j.failing) {
        status.consecutiveFailures++;
        status.confirmedFailures = j.confirmed ? status.confirmedFailures + 1 : 0;
      }
      const verdict: WatchVerdict = j.failing && status.staged ? 'staged' : j.verdict;
      if (verdict !== status.verdict && verdict !== 'ok' && verdict !== 'warning' && verdict !== 'staged') say(`verdict:${verdict}`, j.why, 'failed');
      showVerdict(verdict);
      // Staged at the Nth confirmed failure; tried again every N more while something was in the way.
      const n = status.confirmedFailures - failuresToStage;
      if (j.confirmed && n >= 0 && n % failuresToStage === 0) await stage(j);

      const inc = updateIncidents(status.incidents, j.warnings, status.lastProbeAt);
      status.incidents = inc.incidents;
      for (const i of inc.opened) {
        const returned = i.key.startsWith(RETURNED_PREFIX) ? layout.nodes.find((n) => n.name === i.key.slice(RETURNED_PREFIX.length)) : undefined;
        if (returned) recordFenceOnReturn(cluster, returned.site);
        say(`warning:${i.key}`, `${i.detail} (since ${i.since})`, 'failed');
        await notify('watch.warning', `${cluster}: ${i.detail} (since ${i.since})`, { incident: i.key, since: i.since });
      }
      for (const e of inc.ended) {
        say(`warning-ended:${e.incident.key}`, `ended: ${e.incident.detail} (from ${e.incident.since} to ${e.at})`);
        await notify('watch.warning-ended', `${cluster}: ended: ${e.incident.detail} (from ${e.incident.since} to ${e.at})`, {
          incident: e.incident.key,
          since: e.incident.since,
          until: e.at,
        });
      }
    }
    // Probes start every interval (a slow probe shortens the wait after it, down to a floor).
    const offsetMs = spread && tick === 0 && !input.carry ? Math.floor(Math.random() * everySeconds * 1000) : 0;
    if (await condition(() => stoppedBy !== null, Math.max(MIN_WAIT_MS, everySeconds * 1000 - (Date.now() - tickStartMs)) + offsetMs)) break;
  }
  if (stoppedBy !== null) {
    say('stopped', `stopped by ${stoppedBy}`);
    return { stoppedBy, antiFlap };
  }
  await continueAsNew<typeof watch>({
    cluster,
    everySeconds,
    failures: failuresToStage,
    ticksPerRun,
    requestedBy: input.requestedBy,
    carry: {
      primary: status.primary,
      consecutiveFailures: status.consecutiveFailures,
      confirmedFailures: status.confirmedFailures,
      staged: status.staged,
      ticks: status.ticks,
      since: status.since,
      incidents: status.incidents,
      antiFlap,
      replaced,
    },
  });
  return { stoppedBy: 'unreachable' };
}
