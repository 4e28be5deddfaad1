/**
 * The watch's judgement of one probe, as pure functions (the workflow, its tests and the console
 * read the same verdicts): who answers as the primary, whether the other sites agree that it is
 * gone (a partition between the worker and one site is not that site's death), the warnings a
 * person should hear about, and the incidents they open and close.
 */
import type { PgNodeStatus, VantageView } from '../../contract/observations';
import type { WatchObservations } from '../../contract/readiness';
import type { AntiFlap, FormerPrimary, Incident, WatchProbe, WatchVerdict } from '../../contract/watch';
import type { ClusterLayout } from '../../topology/layout';
import { assessReadiness } from './readiness-assess';

/** The incident key of a former primary that answers again (`returned:<node>`): a fence-on-return event. */
export const RETURNED_PREFIX = 'returned:';

/** A warning opens (and is notified) once it was seen in this many probes in a row. */
export const INCIDENT_AFTER_PROBES = 2;

export interface Judgement {
  probes: WatchProbe[];
  /** Nodes that answered the worker as a writable primary. */
  primaries: string[];
  /** No node answered the worker as the primary. */
  failing: boolean;
  /** Failing, and every other site's vantage host agrees (or there is none to ask). */
  confirmed: boolean;
  verdict: WatchVerdict;
  why: string;
  warnings: { key: string; detail: string }[];
  formerPrimaries: FormerPrimary[];
}

export function probeOf(s: PgNodeStatus): WatchProbe {
  if (s.reachable) return { node: s.node, verdict: s.inRecovery ? 'standby' : 'primary', detail: describe(s) };
  return { node: s.node, verdict: s.unreachable ?? 'unknown', detail: describe(s) };
}

function describe(n: PgNodeStatus): string {
  if (!n.reachable) return `${n.unreachable ?? 'unknown'}: ${n.error ?? 'no answer'}`;
  if (n.inRecovery) return `standby, replayed ${n.replayLsn ?? '?'}, WAL receiver ${n.walReceiver?.status ?? 'not running'}`;
  return `primary at ${n.currentLsn ?? '?'} on timeline ${n.timeline ?? '?'}`;
}

/** Checks judged against a primary: with none, their failures say nothing new. */
const NEEDS_PRIMARY = /^(standby|slot|lag|traffic):|^primary-writable$/;

/**
 * One probe judged. `replaced`: the primary the watch saw replaced by another, until it answers
 * as a standby (the watch keeps it: a dead site's fence marker cannot be read).
 */
export function judge(
  layout: ClusterLayout,
  o: WatchObservations,
  lastPrimary: string | null,
  observedAt: string,
  replaced: { node: string; newPrimary: string; since: string } | null = null,
): Judgement {
  const probes = o.nodes.map(probeOf);
  const primaries = probes.filter((p) => p.verdict === 'primary').map((p) => p.node);
  const report = assessReadiness(
    {
      layout,
      nodes: o.nodes,
      probe: o.probe,
      lags: o.lags,
      ssh: o.ssh,
      services: [],
      maintenance: [],
      traffic: o.traffic,
      ec2: null,
      backups: o.backups,
      fences: o.fences,
    },
    observedAt,
  );
  const warnings: Judgement['warnings'] = [];
  for (const c of report.checks) {
    if (c.ok || c.name === 'primary') continue;
    if (primaries.length !== 1 && NEEDS_PRIMARY.test(c.name)) continue;
    warnings.push({ key: c.name, detail: c.detail });
  }
  const formerPrimaries: FormerPrimary[] = [];
  const rejoin = (node: string) => `switchyard rejoin ${layout.cluster} --node ${node}`;
  for (const f of o.fences) {
    if (!f.marker) continue;
    const n = o.nodes.find((x) => x.node === f.node);
    const answers = n?.reachable === true;
    formerPrimaries.push({
      node: f.node,
      newPrimary: f.marker.newPrimary,
      fence: 'marked',
      fencedBy: f.marker.fencedBy,
      since: f.marker.at,
      answers,
      rejoin: rejoin(f.node),
    });
    if (answers)
      warnings.push({
        key: `${RETURNED_PREFIX}${f.node}`,
        detail:
          `${f.node}, fenced by ${f.marker.fencedBy} at ${f.marker.at}, answers again (${n?.inRecovery ? 'read-only, in recovery' : 'AS A PRIMARY'}): ` +
          `rejoin it (${rejoin(f.node)}) or stop it`,
      });
  }
  // The primary this watch saw replaced, whose fence could not be read (its host is down).
  if (replaced && !formerPrimaries.some((f) => f.node === replaced.node)) {
    const f = o.fences.find((x) => x.node === replaced.node);
    const n = o.nodes.find((x) => x.node === replaced.node);
    formerPrimaries.push({
      node: replaced.node,
      newPrimary: replaced.newPrimary,
      fence: f?.readable ? 'not-marked' : 'unreadable',
      fencedBy: null,
      since: replaced.since,
      answers: n?.reachable === true,
      rejoin: rejoin(replaced.node),
    });
  }

  if (primaries.length > 1) {
    const why = `${primaries.join(' and ')} all answer as writable primaries: a person must decide which one is fenced`;
    warnings.push({ key: 'split-brain', detail: why });
    return { probes, primaries, failing: false, confirmed: false, verdict: 'split-brain', why, warnings, formerPrimaries };
  }
  if (primaries.length === 1) {
    return {
      probes,
      primaries,
      failing: false,
      confirmed: false,
      verdict: warnings.length ? 'warning' : 'ok',
      why: `${primaries[0]} is the primary`,
      warnings,
      formerPrimaries,
    };
  }

  // No primary answers the worker. Do the other sites see the same?
  const seen = probes.map((p) => `${p.node}: ${p.detail}`).join('; ');
  // The last primary seen; with none known, every node that does not answer as a standby.
  const suspects = lastPrimary ? [lastPrimary] : probes.filter((p) => p.verdict !== 'standby').map((p) => p.node);
  const asking = (node: string) => {
    const site = layout.nodes.find((n) => n.name === node)?.site;
    return (layout.vantages ?? []).filter((v) => v.site !== site);
  };
  const lines: string[] = [];
  const partition: VantageView[] = [];
  const unknown: { host: string; detail: string }[] = [];
  let asked = 0;
  for (const node of suspects) {
    for (const v of asking(node)) {
      asked++;
      const view = o.vantage.find((x) => x.node === node && x.from === v.host);
      if (!view) {
        unknown.push({ host: v.host, detail: `${v.host} (${v.site}) gave no view of ${node}` });
        continue;
      }
      lines.push(view.detail);
      if (view.verdict === 'accepting') partition.push(view);
      else if (view.verdict === 'unknown') unknown.push({ host: v.host, detail: view.detail });
    }
  }
  if (partition.length) {
    for (const p of partition)
      warnings.push({
        key: `partition:${p.node}`,
        detail: `${p.node} does not answer the worker but ${p.detail}: a partition between the worker and ${p.node}'s site, not an outage; no failover is staged`,
      });
    return {
      probes,
      primaries,
      failing: true,
      confirmed: false,
      verdict: 'partition',
      why: `no primary answers the worker (${seen}), but ${lines.join('; ')}`,
      warnings,
      formerPrimaries,
    };
  }
  if (unknown.length) {
    for (const u of unknown) warnings.push({ key: `vantage:${u.host}`, detail: `the outage cannot be confirmed from another site: ${u.detail}` });
    return {
      probes,
      primaries,
      failing: true,
      confirmed: false,
      verdict: 'unconfirmed',
      why:
        `no primary answers the worker (${seen}), and another site cannot confirm it: ${unknown.map((u) => u.detail).join('; ')}; ` +
        `no failover is staged until it can (start one by hand: switchyard failover ${layout.cluster})`,
      warnings,
      formerPrimaries,
    };
  }
  const confirmation = asked
    ? `; confirmed from the other site(s): ${lines.join('; ')}`
    : '; no other site has a vantage host to confirm it (sites.<site>.vantage)';
  return {
    probes,
    primaries,
    failing: true,
    confirmed: true,
    verdict: 'primary-failing',
    why: `no node answers as the primary (${seen})${confirmation}`,
    warnings,
    formerPrimaries,
  };
}

/**
 * The incidents after one probe: a warning seen INCIDENT_AFTER_PROBES times in a row opens one
 * (notified once), one no longer seen ends (notified with its start and end). Returns the list
 * to keep and what to tell.
 */
export function updateIncidents(
  open: Incident[],
  warnings: { key: string; detail: string }[],
  now: string,
): { incidents: Incident[]; opened: Incident[]; ended: { incident: Incident; at: string }[] } {
  const byKey = new Map(open.map((i) => [i.key, i]));
  const incidents: Incident[] = [];
  const opened: Incident[] = [];
  for (const w of warnings) {
    const was = byKey.get(w.key);
    const i: Incident = was ? { ...was, detail: w.detail, seen: was.seen + 1 } : { key: w.key, since: now, detail: w.detail, seen: 1, notified: false };
    if (!i.notified && i.seen >= INCIDENT_AFTER_PROBES) {
      i.notified = true;
      opened.push(i);
    }
    incidents.push(i);
    byKey.delete(w.key);
  }
  // Those not seen this time end; one never notified (a single probe's blip) ends silently.
  const ended = [...byKey.values()].filter((i) => i.notified).map((incident) => ({ incident, at: now }));
  return { incidents, opened, ended };
}

/** Whether the next staged failover may go on without a person, and if not, why. */
export function automaticAllowed(cluster: string, enabled: boolean, coolDownSeconds: number, a: AntiFlap, nowMs: number): { allowed: boolean; why: string } {
  if (!enabled) return { allowed: false, why: 'automatic mode is off for this cluster (failover.automatic)' };
  if (!a.last) return { allowed: true, why: 'no automatic failover before' };
  if (a.ackedBy) return { allowed: true, why: `the last automatic failover ${a.last.workflowId} was acknowledged by ${a.ackedBy}` };
  const endsMs = Date.parse(a.last.at) + coolDownSeconds * 1000;
  if (nowMs >= endsMs) return { allowed: true, why: `the cool-down after the automatic failover ${a.last.workflowId} passed` };
  return {
    allowed: false,
    why:
      `anti-flapping: the automatic failover ${a.last.workflowId} at ${a.last.at} is not acknowledged and its cool-down ends at ` +
      `${new Date(endsMs).toISOString()} (acknowledge it with \`switchyard watch ack ${cluster}\`)`,
  };
}
