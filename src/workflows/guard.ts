/**
 * guard: after a failover, the former primary is watched until rejoin makes it a standby again
 * (DESIGN.md 3a). One guard per cluster (`switchyard-guard-<cluster>`), started by the failover
 * that promoted, visible in the Temporal UI and queryable (`guardStatus`, and `progress` like
 * every runbook). Every `intervalSeconds` it reads each watched node; when one answers as a
 * writable primary while the node promoted in its place is not a standby, it fences it again:
 * over SSH (PostgreSQL stopped, standby.signal and the fence marker written), else with the
 * node's STONITH command. It notifies and records each event in the step log.
 *
 * A watch ends when rejoin releases it, when the node is seen streaming as a standby of the new
 * primary (rejoined by hand), or when the new primary is a standby and the watched node the
 * primary (a switchover back, which only a rejoined node can take part in). The guard ends when
 * it watches nothing; it continues as new to keep its history short, carrying what it watches.
 */
import { condition, continueAsNew, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { guardReleaseSignal, guardStatusQuery, guardWatchSignal, type GuardEvent, type GuardRelease, type GuardWatch } from '../contract/guard';
import { nodeState as seen } from './lib/node-state';
import { notifyVia } from './lib/runbook';
import { StepLog, messageOf } from './lib/steps';
import { GUARD_FENCE, GUARD_POWER, GUARD_READ } from './lib/activity-options';

export interface GuardInput {
  cluster: string;
  /** What the guard watches (a failover signals-with-start its node). */
  watch?: GuardWatch[];
  intervalSeconds?: number;
  /** Carried over continue-as-new. */
  events?: GuardEvent[];
  checks?: number;
  /** Continue as new after this many rounds in one run. Default 200. */
  maxRoundsPerRun?: number;
}

const reads = proxyActivities<Activities>(GUARD_READ);
const fencing = proxyActivities<Activities>(GUARD_FENCE);
const power = proxyActivities<Activities>(GUARD_POWER);

export async function guard(input: GuardInput): Promise<{ cluster: string; checks: number; events: GuardEvent[] }> {
  const { cluster } = input;
  const steps = new StepLog('guard', cluster);
  const { workflowId } = workflowInfo();
  const watching = new Map<string, GuardWatch & { lastSeen: string | null; lastCheckAt: string | null }>();
  for (const w of input.watch ?? []) watching.set(w.node, { ...w, lastSeen: null, lastCheckAt: null });
  const events: GuardEvent[] = [...(input.events ?? [])].slice(0, 50);
  let interval = input.intervalSeconds ?? 5;
  let checks = input.checks ?? 0;
  let woken = false;
  const event = (node: string, kind: GuardEvent['kind'], detail: string, state: 'done' | 'failed' = 'done') => {
    events.unshift({ at: new Date().toISOString(), node, kind, detail });
    events.splice(50);
    steps.note(`${kind}:${node}`, detail, state);
  };

  setHandler(guardWatchSignal, (w: GuardWatch) => {
    if (!w || typeof w.node !== 'string' || typeof w.newPrimary !== 'string') return;
    watching.set(w.node, { ...w, lastSeen: null, lastCheckAt: null });
    event(w.node, 'watching', `watching ${w.node} (fenced by ${w.fencedBy}; ${w.newPrimary} was promoted in its place) until rejoin makes it a standby`);
    woken = true;
  });
  setHandler(guardReleaseSignal, (r: GuardRelease) => {
    if (!r || !watching.has(r.node)) return;
    watching.delete(r.node);
    event(r.node, 'released', `no longer watched: ${r.reason} (${r.by})`);
    woken = true;
  });
  setHandler(guardStatusQuery, () => ({
    cluster,
    watching: [...watching.values()].map((w) => ({ ...w })),
    intervalSeconds: interval,
    checks,
    events: events.map((e) => ({ ...e })),
  }));

  const layout = await steps.run(
    'layout',
    () => reads.clusterLayout({ cluster }),
    (l) => `${l.nodes.length} database nodes; checking every ${input.intervalSeconds ?? l.failover.guardIntervalSeconds ?? 5} s`,
  );
  interval = input.intervalSeconds ?? layout.failover.guardIntervalSeconds ?? 5;
  const notify = notifyVia(layout.notify, cluster, workflowId);
  for (const w of watching.values())
    if (!events.some((e) => e.node === w.node))
      event(w.node, 'watching', `watching ${w.node} (fenced by ${w.fencedBy}; ${w.newPrimary} was promoted in its place) until rejoin makes it a standby`);

  const maxRounds = input.maxRoundsPerRun ?? 200;
  let rounds = 0;
  const status = (node: string) => reads.pgStatus({ cluster, node }).catch(() => null);

  while (watching.size > 0) {
    for (const w of [...watching.values()]) {
      const node = layout.nodes.find((n) => n.name === w.node);
      const np = layout.nodes.find((n) => n.name === w.newPrimary);
      if (!node || !np) {
        watching.delete(w.node);
        event(w.node, 'released', `${!node ? w.node : w.newPrimary} is no database node of ${cluster} any more: not watched`);
        continue;
      }
      const now = seen(await status(w.node), np);
      checks++;
      if (now !== w.lastSeen && w.lastSeen !== null) steps.note(`seen:${w.node}`, `${w.node}: ${w.lastSeen} → ${now}`);
      w.lastSeen = now;
      w.lastCheckAt = new Date().toISOString();
      if (now === 'standby-streaming') {
        watching.delete(w.node);
        event(w.node, 'rejoined', `${w.node} streams from ${w.newPrimary} as a standby: rejoined, no longer watched`);
        continue;
      }
      if (now !== 'primary') continue;
      // It answers as a writable primary. Legitimate only if the node promoted in its place is a
      // standby now (a switchover back after a rejoin); otherwise this is a second primary.
      const other = seen(await status(w.newPrimary));
      if (other === 'standby' || other === 'standby-streaming') {
        watching.delete(w.node);
        event(
          w.node,
          'legitimate-primary',
          `${w.node} is primary and ${w.newPrimary} a standby: the cluster was switched back, ${w.node} is no former primary any more`,
        );
        continue;
      }
      const text = `${w.node} came back as a writable primary while ${w.newPrimary} is ${other}: fencing it again`;
      event(w.node, 'returned-as-primary', text, 'failed');
      await notify('guard.returned', `${cluster}: ${text} (${workflowId})`);
      let fenced = false;
      let how = '';
      try {
        const f = await steps.run(
          `refence:${w.node}`,
          () =>
            fencing.pgFence({
              cluster,
              node: w.node,
              fastTimeoutSeconds: layout.failover.fastStopTimeoutSeconds,
              mark: { by: w.fencedBy, newPrimary: w.newPrimary, reason: `came back as a primary; fenced again by the guard ${workflowId}` },
            }),
          (r) => r.detail,
        );
        fenced = f.fenced;
        how = f.detail;
      } catch (err) {
        how = `fencing over SSH failed: ${messageOf(err as Error)}`;
      }
      if (!fenced && node.stonith) {
        try {
          const p = await steps.run(
            `stonith:${w.node}`,
            () => power.stonith({ cluster, node: w.node }),
            (r) => r.detail,
          );
          const after = seen(await status(w.node));
          fenced = p.ok && (after === 'down' || after === 'no-answer');
          how += `; ${p.detail}; then ${w.node} is ${after}`;
        } catch (err) {
          how += `; STONITH failed: ${messageOf(err as Error)}`;
        }
      }
      event(
        w.node,
        fenced ? 'fenced-again' : 'fence-failed',
        fenced ? `${w.node} fenced again: ${how}` : `${w.node} could NOT be fenced again: ${how}. A person must stop it now.`,
        fenced ? 'done' : 'failed',
      );
      await notify(
        fenced ? 'guard.fenced' : 'guard.fence-failed',
        `${cluster}: ${w.node} ${fenced ? 'fenced again' : 'could NOT be fenced again: a person must stop it'} (${workflowId})`,
      );
    }
    if (watching.size === 0) break;
    rounds++;
    if (rounds >= maxRounds || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof guard>({
        cluster,
        watch: [...watching.values()].map(({ node, newPrimary, fencedBy, since }) => ({ node, newPrimary, fencedBy, since })),
        intervalSeconds: input.intervalSeconds,
        events,
        checks,
        maxRoundsPerRun: input.maxRoundsPerRun,
      });
    }
    woken = false;
    await condition(() => woken, `${interval} seconds`);
  }
  steps.note('result', `nothing left to watch after ${checks} checks`);
  return { cluster, checks, events };
}
