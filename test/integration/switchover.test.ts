/**
 * The switchover and failback runbooks end to end on the sandbox (real PostgreSQL, sshd, HAProxy,
 * moto and Temporal), asserting what an operator checks afterwards, read directly and not through
 * switchyard: which node is primary and which one streams from it, which rows exist where, where
 * the front, the Elastic IP, the secondary private IP and the DNS stand-in point, which services
 * run, the maintenance flags, and what the run's result and step log say.
 *
 *   1. switchover to dc2 and back to dc1 while a writer commits numbered rows through the front the
 *      whole time: every acknowledged row is on the new primary and, once it streams, on the old
 *      one; the run's own write downtime; `switchyard check` ready at the end;
 *   2. after a failover (dc1 killed, old-primary-dead approved) and dc1's machines back without its
 *      PostgreSQL: a failback dry run changes nothing; `switchyard failback --wait` rewinds dc1,
 *      switches back to it, and leaves the sandbox as `sandbox up` made it;
 *   3. refusals on one stage (maxLagBytes 1024, start-switchover confirmed by a person): a switchover
 *      dry run changes nothing; a rejoin of the primary; a second switchover while one waits; the
 *      waiting one rejected (nothing changed); a standby whose replay lags streaming; last, a
 *      standby cut off from the WAL.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startPart, stopPart } from '../../sandbox';
import { decide } from '../../src/client/runs';
import type { FailbackResult } from '../../src/workflows/failback';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import type { RejoinResult } from '../../src/workflows/rejoin';
import type { SwitchoverResult } from '../../src/workflows/switchover';
import { cli, killClis, shown } from '../support/cli';
import { startStage, type Stage } from '../support/stage';
import { failureOf, sleep, stepsNamed, timelineOf, waitingAt } from '../support/runs';

const other = (site: string) => (site === 'dc1' ? 'dc2' : 'dc1');

// ---------------------------------------------------------------------------------------------
// The CLI in a subprocess, as an operator runs it (test/support/cli.ts)

/** `switchyard check demo --json`: exit 0 only when ready. */
async function checkReady(st: Stage): Promise<void> {
  const r = await cli(st, ['check', 'demo', '--json']);
  let failed = '';
  try {
    const report = JSON.parse(r.stdout) as { ready: boolean; primarySite: string; checks: { name: string; ok: boolean; detail: string }[] };
    failed = report.checks
      .filter((c) => !c.ok)
      .map((c) => `${c.name}: ${c.detail}`)
      .join('\n');
    assert.equal(report.primarySite, 'dc1');
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
  }
  assert.equal(r.code, 0, `switchyard check demo is ready; failed checks:\n${failed}\n${shown(r)}`);
}

// ---------------------------------------------------------------------------------------------
// Readers

const nodeOf = (site: string) => `${site}-db`;
const hostOf = (st: Stage, site: string) => st.cluster.postgres.nodes[nodeOf(site)].host;

async function isStandby(st: Stage, node: string): Promise<boolean> {
  const [r] = await st.nodeQuery(node, 'SELECT pg_is_in_recovery() AS standby');
  return r.standby === true;
}

/** The node's WAL receiver, read on the node itself. */
async function walReceiver(st: Stage, node: string): Promise<{ status: string; sender: string } | null> {
  const [r] = await st.nodeQuery(node, 'SELECT status, sender_host AS sender FROM pg_stat_wal_receiver');
  return r ? { status: String(r.status), sender: String(r.sender) } : null;
}

/** Polls until the standby streams from the primary and has replayed everything the primary wrote so far. */
async function caughtUp(st: Stage, standby: string, primary: string, timeoutMs = 30_000): Promise<void> {
  const [{ lsn }] = await st.nodeQuery(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await st.nodeQuery(standby, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
    if (r.done === true) return;
    if (Date.now() > deadline)
      throw new Error(
        `${standby} did not replay up to ${String(lsn)} of ${primary} within ${timeoutMs} ms (WAL receiver: ${JSON.stringify(await walReceiver(st, standby))})`,
      );
    await sleep(200);
  }
}

function dnsRecord(st: Stage): string {
  const dns = st.cluster.traffic.find((d) => d.kind === 'command')!;
  const file = dns.kind === 'command' ? dns.read[dns.read.length - 1] : '';
  return readFileSync(file, 'utf8').trim();
}

/** What the site's repoint-app hook last recorded as the app's database. */
function appDbTarget(st: Stage, site: string): string {
  const hook = st.cluster.sites[site].hooks.afterPromote.find((h) => h.name === 'repoint-app')!;
  return readFileSync(hook.command[2], 'utf8').trim();
}

const serviceNames = (st: Stage, site: string) => Object.keys(st.cluster.sites[site].services);

/** Everything that a run may change, read directly; equal before and after a run that changes nothing. */
async function snapshot(st: Stage) {
  const role = async (node: string) => ((await st.nodeAnswers(node)) ? ((await isStandby(st, node)) ? 'standby' : 'primary') : 'down');
  return {
    dc1: await role('dc1-db'),
    dc2: await role('dc2-db'),
    front: (await st.frontQuery('SELECT host(inet_server_addr()) AS s'))[0].s,
    eip: await st.eipNode(),
    vip: await st.privateIpNodes(),
    dns: dnsRecord(st),
    m1: await st.maintenance('dc1'),
    m2: await st.maintenance('dc2'),
    services: Object.fromEntries(
      await Promise.all(['dc1', 'dc2'].flatMap((site) => serviceNames(st, site).map(async (s) => [`${site}/${s}`, await st.serviceRunning(site, s)] as const))),
    ),
  };
}

/** The cluster is laid out with `site` primary and the other site its streaming standby, everything pointing at `site`. */
async function assertPrimaryAt(st: Stage, site: string): Promise<void> {
  const standbySite = other(site);
  assert.equal(await isStandby(st, nodeOf(site)), false, `${nodeOf(site)} is the primary`);
  assert.equal(await isStandby(st, nodeOf(standbySite)), true, `${nodeOf(standbySite)} is in recovery`);
  const deadline = Date.now() + 20_000;
  let rx = await walReceiver(st, nodeOf(standbySite));
  while (rx?.status !== 'streaming' && Date.now() < deadline) {
    await sleep(200);
    rx = await walReceiver(st, nodeOf(standbySite));
  }
  assert.deepEqual(rx, { status: 'streaming', sender: hostOf(st, site) }, `${nodeOf(standbySite)} streams from ${nodeOf(site)}`);
  const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('through the front') RETURNING host(inet_server_addr()) AS s`);
  assert.equal(w.s, hostOf(st, site), `the front sends writes to ${site}`);
  assert.equal(await st.eipNode(), nodeOf(site), `the Elastic IP is on ${nodeOf(site)}'s instance (EC2 API)`);
  assert.deepEqual(await st.privateIpNodes(), [nodeOf(site)], `the secondary private IP is on ${nodeOf(site)} only (EC2 API)`);
  assert.equal(dnsRecord(st), `${site} ${hostOf(st, site)}:5432`, `the DNS stand-in names ${site}`);
  for (const svc of serviceNames(st, site)) assert.equal(await st.serviceRunning(site, svc), true, `${svc} runs at ${site}`);
  for (const svc of serviceNames(st, standbySite)) assert.equal(await st.serviceRunning(standbySite, svc), false, `${svc} is stopped at ${standbySite}`);
  assert.deepEqual(await st.maintenance(site), { on: false, http: 200 }, `maintenance off at ${site}`);
  assert.deepEqual(await st.maintenance(standbySite), { on: false, http: 200 }, `maintenance off at ${standbySite}`);
}

// ---------------------------------------------------------------------------------------------
// A writer through the front for the whole run

interface Writer {
  /** Rows whose INSERT … RETURNING came back, with the server that took them. */
  acked: { id: string; server: string; at: number }[];
  failures: { at: number; error: string }[];
  stop(): Promise<void>;
}

function startWriter(st: Stage, label: string): Writer {
  const acked: Writer['acked'] = [];
  const failures: Writer['failures'] = [];
  let stopping = false;
  const loop = (async () => {
    for (let n = 1; !stopping; n++) {
      try {
        const [r] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ($1) RETURNING id, host(inet_server_addr()) AS s`, [`${label} ${n}`]);
        acked.push({ id: String(r.id), server: String(r.s), at: Date.now() });
        await sleep(10);
      } catch (err) {
        failures.push({ at: Date.now(), error: (err as Error).message });
        await sleep(50);
      }
    }
  })();
  return {
    acked,
    failures,
    async stop() {
      stopping = true;
      await loop;
    },
  };
}

/** One switchover under continuous writes, and everything an operator checks afterwards. */
async function switchoverUnderWrites(st: Stage, to: string): Promise<{ downtimeMs: number; frontGapMs: number; acked: number; refused: number }> {
  const from = other(to);
  const tlBefore = await timelineOf(st, nodeOf(from));
  const writer = startWriter(st, `writer during switchover to ${to}`);
  await sleep(1000);
  const ackedBeforeRun = writer.acked.length;
  assert.ok(ackedBeforeRun > 0, `writes go through before the run (failures: ${writer.failures.map((f) => f.error).join('; ')})`);
  const h = await st.start('switchover', { cluster: 'demo', to, requestedBy: 'alice' }, `switchover-to-${to}-${Date.now()}`);
  let r: SwitchoverResult;
  try {
    r = (await h.result()) as SwitchoverResult;
  } finally {
    // Keep writing a bit after the run finished.
    await sleep(1500);
    await writer.stop();
  }

  assert.equal(r.outcome, 'completed', r.state);
  assert.deepEqual(r.from, { site: from, node: nodeOf(from) });
  assert.deepEqual(r.to, { site: to, node: nodeOf(to) });
  assert.doesNotMatch(r.state, /NOT/);
  assert.ok(r.writeDowntimeMs !== null && r.writeDowntimeMs > 0, `write downtime measured: ${r.writeDowntimeMs} (${r.probe?.detail})`);
  const run = await h.describe();
  const runMs = run.closeTime!.getTime() - run.startTime.getTime();
  assert.ok(r.writeDowntimeMs <= runMs, `the write downtime (${r.writeDowntimeMs} ms) lies within the run (${runMs} ms)`);
  assert.equal(r.probe?.acceptedOn, nodeOf(to));
  assert.deepEqual(r.timeline, { before: tlBefore, after: tlBefore + 1 });
  assert.equal(await timelineOf(st, nodeOf(to)), tlBefore + 1, 'one new timeline on the new primary');
  assert.ok(r.shutdownCheckpointLsn && r.replayedLsn, 'the shutdown checkpoint and the replay position are reported');
  assert.deepEqual(r.oldPrimary, { node: nodeOf(from), streaming: true, via: 'follow', rejoin: null }, 'the old primary followed without a rejoin');
  assert.deepEqual(
    r.traffic.map((t) => [t.driver, t.site, t.changed]),
    [
      ['front', to, true],
      ['eip', to, true],
      ['vip', to, true],
      ['dns', to, true],
    ],
  );

  // Every acknowledged write is on the new primary, and on the old one once it streams.
  const ids = writer.acked.map((a) => a.id);
  assert.ok(ids.length > ackedBeforeRun, 'writes were acknowledged during and after the run');
  const onNew = new Set(
    (await st.nodeQuery(nodeOf(to), 'SELECT id::text AS id FROM public.sandbox_rows WHERE id = ANY($1::bigint[])', [ids])).map((x) => String(x.id)),
  );
  const lost = ids.filter((id) => !onNew.has(id));
  assert.deepEqual(lost, [], `no acknowledged row lost on ${nodeOf(to)}`);
  await caughtUp(st, nodeOf(from), nodeOf(to));
  const [{ n }] = await st.nodeQuery(nodeOf(from), 'SELECT count(*)::int AS n FROM public.sandbox_rows WHERE id = ANY($1::bigint[])', [ids]);
  assert.equal(n, ids.length, `every acknowledged row is on ${nodeOf(from)} too, now a standby`);
  assert.equal(writer.acked[0].server, hostOf(st, from), 'the first writes went to the old primary');
  assert.equal(writer.acked[writer.acked.length - 1].server, hostOf(st, to), 'the last writes went to the new primary');
  const servers = writer.acked.map((a) => a.server);
  assert.ok(servers.indexOf(hostOf(st, to)) > servers.lastIndexOf(hostOf(st, from)), 'once a write was taken by the new primary, none went to the old one');
  // What a client through the front saw: from its last write on the old primary to its first on the new one.
  // The writer may see refusals in that gap, or none at all: the front holds a connection that finds
  // the old primary down and retries it on the new one. Either way its writes span the switch.
  const lastOld = writer.acked.filter((a) => a.server === hostOf(st, from)).pop()!;
  const firstNew = writer.acked.find((a) => a.server === hostOf(st, to))!;
  const steps = (await h.query<Progress>('progress')).steps;
  const stopOld = steps.find((s) => s.name === 'stop-old-primary' && s.state === 'done')!;
  const promote = steps.find((s) => s.name === 'promote' && s.state === 'done')!;
  assert.ok(
    lastOld.at <= Date.parse(stopOld.endedAt!),
    `the old primary's last write (${new Date(lastOld.at).toISOString()}) came before it was stopped (${stopOld.endedAt})`,
  );
  assert.ok(
    firstNew.at >= Date.parse(promote.startedAt),
    `the new primary's first write (${new Date(firstNew.at).toISOString()}) came after promotion began (${promote.startedAt})`,
  );
  assert.ok(lastOld.at >= Date.parse(steps.find((s) => s.name === 'lock')!.startedAt), 'the writer was writing to the old primary while the run was under way');
  assert.deepEqual(
    writer.failures.filter((f) => f.at > firstNew.at),
    [],
    'no write refused once the new primary took one through the front',
  );

  await assertPrimaryAt(st, to);
  assert.equal(appDbTarget(st, to), `${hostOf(st, to)}:5432`, `the repoint-app hook at ${to} names ${nodeOf(to)}`);

  // The step log tells the story in order.
  const p = await h.query<Progress>('progress');
  const names = p.steps.filter((s) => s.state === 'done').map((s) => s.name);
  // Up to the write probe one after another; then the hook and the traffic drivers at once;
  // once clients point at the new primary the services start and maintenance ends while the old
  // primary follows.
  const probe = `write-probe:${nodeOf(to)}`;
  const clientsBack = ['hook:repoint-app', 'traffic:front', 'traffic:eip', 'traffic:vip', 'traffic:dns'];
  const chains = [
    ['lock', `maintenance-on:${from}`, ...serviceNames(st, from).map((s) => `service-stop:${from}/${s}`), 'stop-old-primary', 'replay', 'promote', probe],
    ...clientsBack.map((x) => [probe, x, 'follow:slot']),
    ...clientsBack.map((x) => [
      x,
      ...serviceNames(st, to).map((s) => `service-start:${to}/${s}`),
      `maintenance-off:${to}`,
      `maintenance-off:${from}`,
      'write-downtime',
    ]),
    ['follow:slot', 'follow:configure', 'follow:start', 'follow:streaming', 'write-downtime', 'unlock'],
  ];
  for (const chain of chains) {
    const at = chain.map((x) => names.indexOf(x));
    assert.ok(
      at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])),
      `steps in order ${chain.join(' → ')}; got ${names.join(', ')}`,
    );
  }
  assert.equal(stepsNamed(p, /^(undo:.*|follow:rejoin)$/).length, 0, 'nothing undone, no rejoin');
  assert.equal(p.waitingFor, null);
  return { downtimeMs: r.writeDowntimeMs, frontGapMs: firstNew.at - lastOld.at, acked: ids.length, refused: writer.failures.length };
}

// ---------------------------------------------------------------------------------------------

describe('switchover under continuous writes: dc1 → dc2 → dc1', () => {
  let st: Stage;
  before(async () => {
    st = await startStage();
  });
  after(async () => {
    killClis();
    await st?.down();
  });

  it('to dc2: zero acknowledged rows lost, dc1 follows dc2, traffic, services and flags on dc2; then back to dc1 the same way, and check is ready', async () => {
    const there = await switchoverUnderWrites(st, 'dc2');
    const back = await switchoverUnderWrites(st, 'dc1');
    process.stdout.write(
      `# switchover write downtime, the run's probes (through the front, last write on the old primary → first on the new): ` +
        `dc1→dc2 ${there.downtimeMs} ms (${there.frontGapMs} ms; ${there.acked} writes acknowledged, ${there.refused} refused), ` +
        `dc2→dc1 ${back.downtimeMs} ms (${back.frontGapMs} ms; ${back.acked} acknowledged, ${back.refused} refused)\n`,
    );
    await checkReady(st);
  });
});

describe('failback after a failover: the sandbox as `sandbox up` made it', () => {
  let st: Stage;
  let failoverTimeline = 0;
  before(async () => {
    st = await startStage();
    const ready = (await st.client.workflow.execute('readiness', {
      taskQueue: 'switchyard',
      workflowId: `readiness-before-outage-${Date.now()}`,
      args: [{ cluster: 'demo' }],
    })) as { ready: boolean };
    assert.equal(ready.ready, true);
    await stopPart(st.sb.opts, 'dc1', 'kill');
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' }, `failover-before-failback-${Date.now()}`);
    await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
    const answer = await decide(st.client, h.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
    assert.equal(answer.accepted, true);
    const f = (await h.result()) as FailoverResult;
    assert.equal(f.outcome, 'completed');
    failoverTimeline = f.timeline.after!;
    // Rows written on dc2 while dc1 is away: dc1 must have them after the failback.
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) SELECT 'while dc1 was away ' || g FROM generate_series(1, 50) g`);
    // dc1's machines come back, its PostgreSQL does not start by itself.
    for (const part of ['dc1-db/sshd', 'dc1-app/sshd', 'dc1-app/app']) await startPart(st.sb.opts, part);
    assert.equal(await st.nodeAnswers('dc1-db'), false, "dc1's PostgreSQL stays down");
  });
  after(async () => {
    killClis();
    await st?.down();
  });

  it('a dry run plans the rejoin and changes nothing', async () => {
    const before = await snapshot(st);
    assert.equal(before.dc1, 'down');
    assert.equal(before.dc2, 'primary');
    const id = `failback-dry-${Date.now()}`;
    const r = (await (await st.start('failback', { cluster: 'demo', requestedBy: 'alice', dryRun: true }, id)).result()) as FailbackResult;
    assert.equal(r.outcome, 'planned');
    assert.deepEqual(r.preferred, { site: 'dc1', node: 'dc1-db' });
    assert.equal(r.switchover, null);
    assert.equal(r.rejoin?.outcome, 'planned');
    const plan = Object.fromEntries((r.rejoin?.plan ?? []).map((p) => [p.step, p.action]));
    assert.match(plan.rewind, /pg_rewind from dc2-db; on failure, a base backup/);
    assert.match(plan.configure, /primary_conninfo to dc2-db/);
    assert.deepEqual(await snapshot(st), before);
    const p = await st.client.workflow.getHandle(id).query<Progress>('progress');
    assert.equal(stepsNamed(p, /^(lock|rejoin|switchover)$/).length, 0, 'no lock taken, no child run but the planning rejoin');
  });

  it('`switchyard failback demo --wait` rewinds dc1, switches back to it and ends ready', async () => {
    const id = `failback-cli-${Date.now()}`;
    const run = await cli(st, ['failback', 'demo', '--as', 'alice', '--wait', '--id', id, '--json']);
    assert.equal(run.code, 0, shown(run));
    const r = (await st.client.workflow.getHandle(id).result()) as FailbackResult;

    assert.equal(r.outcome, 'completed', r.state);
    assert.equal(r.rejoin?.outcome, 'completed');
    assert.equal(r.rejoin?.method, 'rewind');
    assert.equal(r.rejoin?.fellBackBecause, null);
    assert.deepEqual(r.rejoin?.movedAside, [], 'a rewind moves nothing aside');
    assert.equal(r.switchover?.outcome, 'completed');
    assert.deepEqual(r.switchover?.to, { site: 'dc1', node: 'dc1-db' });
    assert.deepEqual(r.switchover?.timeline, { before: failoverTimeline, after: failoverTimeline + 1 });
    assert.ok((r.switchover?.writeDowntimeMs ?? 0) > 0, 'the switchover back measured its write downtime');
    process.stdout.write(
      `# failback: rewind ${r.rejoin?.copySeconds} s (diverged ${r.rejoin?.divergedBytes} bytes), switchover write downtime ${r.switchover?.writeDowntimeMs} ms, total ${r.durationSeconds} s\n`,
    );

    // The child runs exist under their ids, closed completed, with their own step logs.
    for (const [child, type] of [
      [`${id}-rejoin`, 'rejoin'],
      [`${id}-switchover`, 'switchover'],
    ] as const) {
      const h = st.client.workflow.getHandle(child);
      const d = await h.describe();
      assert.equal(d.type, type);
      assert.equal(d.status.name, 'COMPLETED', `${child} completed`);
      assert.equal(d.parentExecution?.workflowId, id, `${child} is a child of ${id}`);
    }
    const rj = (await st.client.workflow.getHandle(`${id}-rejoin`).result()) as RejoinResult;
    assert.equal(rj.method, 'rewind');
    const parent = await st.client.workflow.getHandle(id).query<Progress>('progress');
    const names = parent.steps.filter((s) => s.state === 'done').map((s) => s.name);
    for (const [a, b] of [
      ['lock', 'rejoin'],
      ['rejoin', 'switchover'],
      ['switchover', 'unlock'],
    ])
      assert.ok(names.indexOf(a) >= 0 && names.indexOf(a) < names.indexOf(b), `${a} before ${b}: ${names.join(', ')}`);
    const sw = await st.client.workflow.getHandle(`${id}-switchover`).query<Progress>('progress');
    assert.match(stepsNamed(sw, /^lock$/)[0].detail, new RegExp(`locked by the parent run ${id}`));

    // The original layout, read directly.
    await assertPrimaryAt(st, 'dc1');
    assert.equal(await timelineOf(st, 'dc1-db'), failoverTimeline + 1);
    assert.equal(appDbTarget(st, 'dc1'), `${hostOf(st, 'dc1')}:5432`, "the repoint-app hook at dc1 names dc1's database");
    const [{ n }] = await st.nodeQuery('dc1-db', `SELECT count(*)::int AS n FROM public.sandbox_rows WHERE note LIKE 'while dc1 was away %'`);
    assert.equal(n, 50, 'the rows written on dc2 while dc1 was away are on dc1');
    await checkReady(st);
  });
});

describe('switchover refusals (maxLagBytes 1024, start-switchover confirmed by a person)', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({
      edit: (c) => {
        (c.postgres as Record<string, unknown>).maxLagBytes = 1024;
        c.switchover = { confirmStart: true, replayTimeoutSeconds: 3 };
      },
    });
  });
  after(async () => {
    await st?.down();
  });

  it('a switchover dry run returns the plan and changes nothing', async () => {
    const before = await snapshot(st);
    const id = `switchover-dry-${Date.now()}`;
    const r = (await (await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice', dryRun: true }, id)).result()) as SwitchoverResult;
    assert.equal(r.outcome, 'planned');
    assert.deepEqual(r.to, { site: 'dc2', node: 'dc2-db' });
    const plan = Object.fromEntries(r.plan.map((p) => [p.step, p.action]));
    assert.match(plan['checkpoint:start-switchover'], /maintenance window/);
    assert.match(plan['stop-old-primary'], /pg_ctl stop -m fast/);
    assert.match(plan.promote, /pg_promote/);
    assert.match(plan['traffic:front'], /move to dc2/);
    assert.match(plan.follow, /standby of dc2-db/);
    assert.deepEqual(await snapshot(st), before);
    const p = await st.client.workflow.getHandle(id).query<Progress>('progress');
    assert.equal(stepsNamed(p, /^(lock|stop-old-primary|promote|maintenance-on:.*|service-stop:.*|traffic:.*)$/).length, 0, 'no mutating step ran');
  });

  it('a rejoin of the current primary is refused', async () => {
    const h = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' }, `rejoin-primary-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'PreconditionFailed');
    assert.match(f.message, /dc1-db is the current primary of demo .*use switchover/);
    assert.equal(await isStandby(st, 'dc1-db'), false);
  });

  it('a second switchover while one waits at start-switchover is refused naming it; the first, rejected, changes nothing', async () => {
    const before = await snapshot(st);
    const first = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, `switchover-first-${Date.now()}`);
    const waiting = await st.waitProgress(first.workflowId, waitingAt('start-switchover'), 'the start-switchover checkpoint');
    assert.match(stepsNamed(waiting, /^checkpoint:start-switchover$/)[0].detail, /Switch demo over from dc1 to dc2/);

    const second = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'carol' }, `switchover-second-${Date.now()}`);
    const busy = await failureOf(second.result());
    assert.equal(busy.type, 'ClusterBusy');
    assert.match(busy.message, new RegExp(`busy: switchover ${first.workflowId}`));
    assert.equal((await first.describe()).status.name, 'RUNNING');

    const answer = await decide(st.client, first.workflowId, { checkpoint: 'start-switchover', decision: 'reject', by: 'bob', comment: 'not in the window' });
    assert.equal(answer.accepted, true);
    const r = (await first.result()) as SwitchoverResult;
    assert.equal(r.outcome, 'aborted');
    assert.match(r.abortedBecause ?? '', /start-switchover rejected by bob/);
    assert.equal(r.state, 'nothing was changed');
    assert.deepEqual(
      r.checkpoints.map((c) => [c.checkpoint, c.decision, c.by]),
      [['start-switchover', 'reject', 'bob']],
    );
    const p = await first.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^(stop-old-primary|promote|maintenance-on:.*|service-stop:.*|traffic:.*)$/).length, 0, 'no mutating step ran');
    assert.equal(stepsNamed(p, /^unlock$/)[0]?.state, 'done', 'the lock was released');
    assert.deepEqual(await snapshot(st), before);
    await assertPrimaryAt(st, 'dc1');
  });

  it('a standby whose replay lags beyond maxLagBytes (while it streams) is refused as too far behind', async () => {
    await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_pause()');
    try {
      await st.frontQuery(`INSERT INTO public.sandbox_rows (note) SELECT 'not replayed on the standby ' || g FROM generate_series(1, 2000) g`);
      const h = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, `switchover-lagging-${Date.now()}`);
      const f = await failureOf(h.result());
      assert.equal(f.type, 'PreconditionFailed');
      assert.match(f.message, /standby dc2-db is too far behind dc1-db for a switchover: \d+ bytes \(bound: postgres.maxLagBytes = 1024\)/);
      const p = await h.query<Progress>('progress');
      assert.equal(stepsNamed(p, /^checkpoint:start-switchover$/).length, 0, 'refused before asking anyone');
    } finally {
      await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_resume()');
    }
    await caughtUp(st, 'dc2-db', 'dc1-db');
    await assertPrimaryAt(st, 'dc1');
  });

  it("aborted before promotion (dc2 never replays dc1's shutdown checkpoint): dc1 started again, services and maintenance as before, nothing promoted", async () => {
    const before = await snapshot(st);
    const h = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, `switchover-abort-${Date.now()}`);
    await st.waitProgress(h.workflowId, waitingAt('start-switchover'), 'the start-switchover checkpoint');
    // dc2 still streams, but replays nothing more: the shutdown checkpoint of dc1 never arrives in its data.
    await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_pause()');
    let r: SwitchoverResult;
    try {
      assert.equal((await decide(st.client, h.workflowId, { checkpoint: 'start-switchover', decision: 'approve', by: 'bob' })).accepted, true);
      r = (await h.result()) as SwitchoverResult;
    } finally {
      await st.nodeQuery('dc2-db', 'SELECT pg_wal_replay_resume()');
    }
    assert.equal(r.outcome, 'aborted');
    assert.match(r.abortedBecause ?? '', /^dc2-db did not replay up to dc1-db's shutdown checkpoint [0-9A-F]+\/[0-9A-F]+ within 3 s/);
    assert.match(
      r.state,
      /^nothing was promoted: dc1-db \(dc1\) is the primary, dc2-db a standby; traffic was not moved; undone: start PostgreSQL dc1-db again, /,
    );
    assert.doesNotMatch(r.state, /could not undo/);
    assert.deepEqual(r.timeline.after, r.timeline.before);
    assert.equal(r.writeDowntimeMs, null);

    const p = await h.query<Progress>('progress');
    const names = p.steps.map((s) => s.name);
    assert.equal(stepsNamed(p, /^(promote|traffic:.*|follow:.*)$/).length, 0, 'nothing promoted, no traffic moved');
    const undone = names.filter((n) => n.startsWith('undo:'));
    const serviceUndo = serviceNames(st, 'dc1')
      .map((s) => `undo:start ${s} at dc1`)
      .reverse();
    assert.deepEqual(undone, ['undo:start PostgreSQL dc1-db again', ...serviceUndo, 'undo:maintenance off at dc1'], 'undone in reverse order of doing');
    assert.ok(stepsNamed(p, /^undo:/).every((s) => s.state === 'done'));
    assert.equal(stepsNamed(p, /^unlock$/)[0]?.state, 'done', 'the lock was released');

    await caughtUp(st, 'dc2-db', 'dc1-db');
    assert.deepEqual(await snapshot(st), before, 'roles, front, Elastic IP, private IP, DNS, maintenance and services as before');
    await assertPrimaryAt(st, 'dc1');
  });

  // Last: the standby's WAL receiver is not restored afterwards.
  it("a standby cut off from the primary's WAL is refused: rejoin it first", async () => {
    await st.standbyFallsBehind('dc2-db', 2000);
    const h = await st.start('switchover', { cluster: 'demo', to: 'dc2', requestedBy: 'alice' }, `switchover-cut-off-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'PreconditionFailed');
    assert.match(f.message, /dc2-db does not stream from dc1-db \(WAL receiver not running\): rejoin it first/);
    assert.equal(await isStandby(st, 'dc2-db'), true);
    assert.equal(await isStandby(st, 'dc1-db'), false);
    assert.equal(await st.eipNode(), 'dc1-db');
  });
});
