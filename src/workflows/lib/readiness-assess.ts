/**
 * Readiness as a pure function of what was observed.
 * Deterministic and free of I/O, so the workflow, the tests and later runbooks (a failover's
 * data-loss gate reads the last readiness) all judge the same way.
 */
import { formatAge } from './retention';
import type { PgNodeStatus } from '../../contract/observations';
import { formatBytes } from '../../contract/format';
import type { Observations, ReadinessCheck, ReadinessReport } from '../../contract/readiness';
export { backupObservation } from '../../contract/readiness';

/** The primaries among the observed nodes: reachable and not in recovery. */
export function primariesOf(nodes: PgNodeStatus[]): PgNodeStatus[] {
  return nodes.filter((n) => n.reachable && n.inRecovery === false);
}

export function assessReadiness(o: Observations, observedAt: string): ReadinessReport {
  const checks: ReadinessCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const { layout } = o;

  // --- who is primary ---------------------------------------------------------------------
  const primaries = primariesOf(o.nodes);
  const describeNode = (n: PgNodeStatus) =>
    !n.reachable ? `${n.node} unreachable (${n.error ?? 'no answer'})` : n.inRecovery ? `${n.node} in recovery` : `${n.node} accepts writes`;
  const primary = primaries.length === 1 ? primaries[0] : null;
  if (primary) {
    check('primary', true, `${primary.node} (${primary.site}) is primary on timeline ${primary.timeline ?? '?'}`);
  } else if (primaries.length === 0) {
    check('primary', false, `no node is primary: ${o.nodes.map(describeNode).join('; ')}`);
  } else {
    check('primary', false, `split brain: ${primaries.map((p) => `${p.node} (${p.site})`).join(' and ')} are all out of recovery`);
  }

  if (primary) {
    if (o.probe === null) check('primary-writable', false, `no write was tried on ${primary.node}`);
    else check('primary-writable', o.probe.ok, o.probe.detail);
  }

  // --- standbys -----------------------------------------------------------------------------
  const standbys = o.nodes.filter((n) => n !== primary && !(primaries.length > 1 && primaries.includes(n)));
  for (const s of standbys) {
    const name = `standby:${s.node}`;
    // The primary's view of the standby's slot, whether or not the standby itself answers.
    const slotName = layout.nodes.find((n) => n.name === s.node)?.slot;
    if (primary && slotName) {
      const slot = primary.slots?.find((sl) => sl.name === slotName);
      check(
        `slot:${s.node}`,
        slot?.active === true,
        slot ? `slot ${slotName} on ${primary.node} is ${slot.active ? 'active' : 'inactive'}` : `slot ${slotName} does not exist on ${primary.node}`,
      );
    }
    if (!s.reachable) {
      check(name, false, `${s.node} (${s.site}) is unreachable: ${s.error ?? 'no answer'}`);
      continue;
    }
    if (!s.inRecovery) {
      check(name, false, `${s.node} (${s.site}) is not in recovery`);
      continue;
    }
    const rx = s.walReceiver;
    if (!rx || rx.status !== 'streaming') {
      check(name, false, `${s.node} (${s.site}) is in recovery but not streaming (WAL receiver: ${rx ? rx.status : 'not running'})`);
      continue;
    }
    const expected = primary ? layout.nodes.find((n) => n.name === primary.node) : undefined;
    const fromPrimary = expected ? rx.senderHost === expected.host && rx.senderPort === expected.port : false;
    check(
      name,
      fromPrimary,
      fromPrimary
        ? `${s.node} (${s.site}) streams from ${rx.senderHost}:${rx.senderPort}${rx.slotName ? ` via slot ${rx.slotName}` : ''}`
        : `${s.node} (${s.site}) streams from ${rx.senderHost}:${rx.senderPort}, which is not the primary` +
            (expected ? ` (${expected.host}:${expected.port})` : ''),
    );
    const lag = o.lags.find((l) => l.standby === s.node);
    if (lag) {
      const within = lag.lagBytes !== null && lag.lagBytes <= layout.maxLagBytes;
      check(
        `lag:${s.node}`,
        within,
        `${formatBytes(lag.lagBytes)} behind (${lag.lagSeconds === null ? 'unknown' : `${lag.lagSeconds.toFixed(1)} s`}); ` +
          `bound ${formatBytes(layout.maxLagBytes)}`,
      );
    }
  }

  // --- fenced former primaries: not ready until rejoin makes them standbys again ---------------
  for (const f of o.fences ?? []) {
    const name = `fence:${f.node}`;
    if (f.marker) {
      check(
        name,
        false,
        `${f.node} is a fenced former primary (fenced by ${f.marker.fencedBy} at ${f.marker.at}; ${f.marker.newPrimary} was promoted in its place)` +
          (f.standbySignal ? '' : ' and its standby.signal is MISSING: a restart would make it a primary') +
          `: run \`switchyard rejoin ${layout.cluster} --node ${f.node}\``,
      );
    }
    // An unreadable data directory adds nothing: that node's own checks already fail.
  }

  // --- hosts over SSH -----------------------------------------------------------------------
  for (const h of o.ssh) check(`ssh:${h.host}`, h.ok, h.detail);

  // --- services: the primary site's run, the others' are stopped -------------------------------
  const primarySite = primary?.site ?? null;
  for (const s of o.services) {
    const name = `service:${s.site}/${s.service}`;
    if (s.running === null) check(name, false, `state unknown: ${s.detail}`);
    else if (primarySite === null) check(name, false, `${s.running ? 'running' : 'stopped'}; no primary site to judge against`);
    else if (s.site === primarySite) check(name, s.running, s.running ? 'running on the primary site' : `stopped, but ${s.site} is the primary site`);
    else check(name, !s.running, s.running ? `running on standby site ${s.site}; only the primary site's services should run` : 'stopped (standby site)');
  }

  // --- maintenance mode and the app ---------------------------------------------------------
  for (const m of o.maintenance) {
    const name = `maintenance:${m.site}`;
    const seen = `maintenance ${m.on === null ? 'unknown' : m.on ? 'on' : 'off'}, app HTTP ${m.httpStatus ?? 'no answer'}`;
    if (m.site === primarySite) check(name, m.on === false && (m.httpStatus === null ? false : m.httpStatus < 400), seen);
    else check(name, m.on !== null, `${seen} (not the primary site)`);
  }

  // --- traffic -------------------------------------------------------------------------------
  const traffic: ReadinessReport['traffic'] = {};
  for (const t of o.traffic) {
    traffic[t.driver] = { kind: t.kind, site: t.site, target: t.target };
    const ok = primarySite !== null && t.site === primarySite;
    check(
      `traffic:${t.driver}`,
      ok,
      `${t.kind} points at ${t.site ?? 'no site'}${t.target ? ` (${t.target})` : ''}` +
        `${ok || primarySite === null ? '' : `, not the primary site ${primarySite}`}${t.detail ? `; ${t.detail}` : ''}`,
    );
  }

  // --- EC2 -------------------------------------------------------------------------------------
  for (const i of o.ec2 ?? []) {
    check(
      `ec2:${i.node}`,
      i.instanceId !== null && i.state === 'running',
      i.instanceId ? `${i.instanceId} ${i.state}${i.privateIp ? `, ${i.privateIp}` : ''}${i.detail ? `; ${i.detail}` : ''}` : i.detail,
    );
  }

  // --- backups: the newest one a drill proved restorable, against backup.maxRestorableAge --------
  let newestProvenAgeSeconds: number | null = null;
  if (o.backups && layout.backup) {
    const b = o.backups;
    const max = layout.backup.maxRestorableAgeSeconds;
    const made = b.newestProven ? (b.newestProven.finishedAt ?? b.newestProven.provenAt) : null;
    newestProvenAgeSeconds = made ? Math.max(0, Math.round((Date.parse(observedAt) - Date.parse(made)) / 1000)) : null;
    const bound = max === null ? 'no maximum set (backup.maxRestorableAge)' : `maximum ${formatAge(max)}`;
    const seen = b.error
      ? `the backup server could not be asked: ${b.error}`
      : b.newestProven
        ? `newest proven-restorable backup ${b.newestProven.backupId} is ${formatAge(newestProvenAgeSeconds ?? 0)} old ` +
          `(drilled ${b.newestProven.provenAt}); ${b.complete} complete base backups`
        : `no backup has been proven restorable by a drill (${b.complete} complete base backups; run \`switchyard drill ${layout.cluster}\`)`;
    const ok = max === null ? true : !b.error && newestProvenAgeSeconds !== null && newestProvenAgeSeconds <= max;
    check('backup', ok, `${seen}; ${bound}`);
  }

  // --- the WAL archive: how far behind the primary (the RPO of a point-in-time restore now), against backup.maxArchiveLag ---
  let archiveLagSeconds: number | null = null;
  let archiveLagBytes: number | null = null;
  if (o.archive && layout.backup?.archive) {
    const max = layout.backup.archive.maxLagSeconds;
    const bound = max === null ? 'no maximum set (backup.maxArchiveLag)' : `maximum ${formatAge(max)}`;
    if ('error' in o.archive) check('archive', max === null, `the WAL archive could not be read: ${o.archive.error}; ${bound}`);
    else {
      archiveLagSeconds = o.archive.lagSeconds;
      archiveLagBytes = o.archive.lagBytes;
      // Unknown is not fine: an archiver that is down or whose position cannot be read fails a set maximum.
      const ok = max === null ? true : archiveLagSeconds !== null && archiveLagSeconds <= max;
      check('archive', ok, `${o.archive.detail}; ${bound}`);
    }
  }

  // The standby the report names: one that answers in recovery first (with no primary, the other nodes include the dead one).
  const standby = standbys.find((n) => n.reachable && n.inRecovery === true) ?? standbys[0] ?? null;
  const lag = standby ? o.lags.find((l) => l.standby === standby.node) : undefined;
  const { layout: _layout, ...observations } = o;
  void _layout;
  return {
    cluster: layout.cluster,
    ready: checks.length > 0 && checks.every((c) => c.ok),
    primarySite,
    primaryNode: primary?.node ?? null,
    standbySite: standby?.site ?? null,
    standbyNode: standby?.node ?? null,
    lagBytes: lag?.lagBytes ?? null,
    lagSeconds: lag?.lagSeconds ?? null,
    traffic,
    checks,
    primaryLsn: o.probe?.lsn ?? primary?.currentLsn ?? null,
    newestProvenBackupAgeSeconds: newestProvenAgeSeconds,
    ...(o.archive ? { archiveLagSeconds, archiveLagBytes } : {}),
    observedAt,
    observations,
  };
}
