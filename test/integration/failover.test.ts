/**
 * The failover runbook end to end on the sandbox: real PostgreSQL, sshd, HAProxy, moto and
 * Temporal. Each scenario gets a fresh sandbox (a failover is not undone by the next test), and
 * each asserts what an operator would check afterwards: who is primary and takes writes, which
 * rows survived, where the front and the Elastic IP point, which services run, the maintenance
 * flags, and what the run's step log and result say.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stopPart } from '../../sandbox';
import { decide } from '../../src/client/runs';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import { startStage, type Stage } from '../support/stage';
import { failureOf, stepsNamed, timelineOf, waitingAt } from '../support/runs';
import { startWorkerProcess, stopWorkerProcesses } from '../support/worker';

describe('failover: dc1 site down (PostgreSQL, sshd and app killed), two-person rule on', () => {
  let st: Stage;
  let before_ids: string[] = [];
  let tlBefore = 0;
  // The cluster's webhook: a local HTTP server that keeps what it is sent.
  const hooks: { event: string; message: string }[] = [];
  let server: Server | undefined;
  let urlDir: string | undefined;
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const j = JSON.parse(body) as { event: string; message: string };
        hooks.push({ event: j.event, message: j.message });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    urlDir = mkdtempSync(join(tmpdir(), 'switchyard-test-webhook-'));
    const urlFile = join(urlDir, 'url');
    writeFileSync(urlFile, `http://127.0.0.1:${(server.address() as { port: number }).port}/hook?token=secret-token\n`);
    st = await startStage({
      edit: (c) => {
        (c.checkpoints as Record<string, unknown>).twoPerson = true;
        c.notify = { webhook: { url: { file: urlFile } } };
        // The readiness reading below is always older than this when the gate looks at it.
        c.failover = { ...((c.failover as object) ?? {}), dataLossFreshness: '1s' };
      },
    });
    before_ids = (await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('before outage 1'), ('before outage 2') RETURNING id`)).map((r) =>
      String(r.id),
    );
    // An operator's last readiness check: the failover's last known position of dc1.
    const ready = (await st.client.workflow.execute('readiness', {
      taskQueue: 'switchyard',
      workflowId: `readiness-before-outage-${Date.now()}`,
      args: [{ cluster: 'demo' }],
    })) as { ready: boolean };
    assert.equal(ready.ready, true);
    tlBefore = await timelineOf(st, 'dc2-db');
    await stopPart(st.sb.opts, 'dc1', 'kill');
  });
  after(async () => {
    await st?.down();
    server?.close();
    if (urlDir) rmSync(urlDir, { recursive: true, force: true });
  });

  it('waits at old-primary-dead, refuses bad decisions and a second failover, and once approved by signal makes dc2 the primary with traffic, services and flags moved', async () => {
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power' }, `failover-site-down-${Date.now()}`);
    const waiting = await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
    const prompt = stepsNamed(waiting, /^checkpoint:old-primary-dead$/)[0];
    assert.equal(prompt.state, 'waiting');
    assert.match(prompt.detail, /dc1-db .*could not be fenced/);
    assert.match(prompt.detail, /ECONNREFUSED|refused|unreachable/);
    assert.match(prompt.detail, /actually is dead/);
    assert.equal(stepsNamed(waiting, /^fence$/)[0]?.state, 'skipped');

    // Refused through the update (what `switchyard approve` sends), each with its reason.
    const wrong = await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' });
    assert.equal(wrong.accepted, false);
    assert.match(wrong.accepted ? '' : wrong.reason, /not waiting at "accept-data-loss".*"old-primary-dead"/);
    const nameless = await decide(st.client, h.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: '  ' });
    assert.match(nameless.accepted ? '' : nameless.reason, /needs the name of the person/);
    const self = await decide(st.client, h.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' });
    assert.match(self.accepted ? '' : self.reason, /alice.*started this run.*two-person/);
    // Refused through the signal (what the UI sends): changes nothing, recorded in the step log.
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'alice' });
    const afterSignal = await st.waitProgress(
      h.workflowId,
      (p) => stepsNamed(p, /^decision:old-primary-dead$/).length > 0,
      'the refused signal in the step log',
    );
    assert.equal(afterSignal.waitingFor, 'old-primary-dead');
    assert.match(stepsNamed(afterSignal, /^decision:old-primary-dead$/)[0].detail, /refused approve from alice: .*two-person/);

    // A second failover of the same cluster, under another id, is refused naming this one.
    const second = await st.start('failover', { cluster: 'demo', requestedBy: 'carol' }, `failover-second-${Date.now()}`);
    const busy = await failureOf(second.result());
    assert.match(busy.message, new RegExp(`busy: failover ${h.workflowId}`));
    assert.equal((await h.describe()).status.name, 'RUNNING');

    // Approved by a signal, as the Temporal UI or `temporal workflow signal --name decision` sends it.
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob', comment: 'dc1 powered off at the PDU' });
    // The only position of dc1 known is the readiness run's, older than failover.dataLossFreshness:
    // "0 bytes" is only a lower bound, so a person is asked (writes after that reading are unknown).
    const gate = await st.waitProgress(h.workflowId, waitingAt('accept-data-loss'), 'the accept-data-loss checkpoint');
    assert.match(
      stepsNamed(gate, /^checkpoint:accept-data-loss$/)[0].detail,
      /dc1-db wrote that dc2-db does not have is not known: 0 bytes is only a lower bound, from a reading \d+ s old \(older than the 1 s freshness\)/,
    );
    assert.equal(stepsNamed(gate, /^confirm-down:dc1-db$/)[0]?.state, 'done', 'dc1 was checked again after the approval');
    await h.signal('decision', { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob', comment: 'nothing was written after the last check' });
    const result = (await h.result()) as FailoverResult;

    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.to, { site: 'dc2', node: 'dc2-db' });
    assert.equal(result.topology.primarySite, 'dc2');
    assert.deepEqual(
      result.topology.needsRejoin.map((n) => n.node),
      ['dc1-db'],
    );
    assert.deepEqual(
      result.checkpoints.map((x) => [x.checkpoint, x.decision, x.by]),
      [
        ['old-primary-dead', 'approve', 'bob'],
        ['accept-data-loss', 'approve', 'bob'],
      ],
    );
    assert.equal(result.fenced, false);
    assert.equal(result.dataLoss?.source, 'readiness');
    assert.equal(result.dataLoss?.exact, false);
    assert.equal(result.dataLostBytes, 0);
    assert.ok(result.rto.fromDecisionSeconds !== null && result.rto.fromDecisionSeconds >= 0);
    assert.ok(result.rto.fromStartSeconds !== null && result.rto.fromStartSeconds >= result.rto.fromDecisionSeconds);
    // The front moves first: clients are back before the other drivers are done.
    assert.ok(
      result.rto.frontFromDecisionSeconds != null && result.rto.frontFromDecisionSeconds <= result.rto.fromDecisionSeconds!,
      JSON.stringify(result.rto),
    );
    assert.deepEqual(result.timeline, { before: tlBefore, after: tlBefore + 1 });

    // What an operator checks, read directly, not through switchyard.
    const [role] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(role.standby, false);
    assert.equal(await timelineOf(st, 'dc2-db'), tlBefore + 1);
    const onDc2 = (await st.nodeQuery('dc2-db', 'SELECT id FROM public.sandbox_rows')).map((r) => String(r.id));
    for (const id of before_ids) assert.ok(onDc2.includes(id), `row ${id} written before the outage is on dc2`);
    const [viaFront] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after failover') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(viaFront.server, st.cluster.postgres.nodes['dc2-db'].host, 'the front sends new connections to dc2');
    assert.equal(await st.eipNode(), 'dc2-db', "the Elastic IP is on dc2-db's instance (EC2 API)");
    for (const svc of Object.keys(st.cluster.sites.dc2.services)) assert.equal(await st.serviceRunning('dc2', svc), true, `${svc} runs at dc2`);
    assert.deepEqual(await st.maintenance('dc2'), { on: false, http: 200 });
    assert.deepEqual(await st.privateIpNodes(), ['dc2-db'], "the secondary private IP is on dc2-db's interface only (EC2 API)");
    const dns = st.cluster.traffic.find((d) => d.kind === 'command')!;
    const record = dns.kind === 'command' ? dns.read[dns.read.length - 1] : '';
    assert.equal(readFileSync(record, 'utf8').trim(), `dc2 ${st.cluster.postgres.nodes['dc2-db'].host}:5432`, 'the DNS stand-in names dc2');
    const hook = st.cluster.sites.dc2.hooks.afterPromote[0];
    assert.equal(readFileSync(hook.command[2], 'utf8').trim(), `${st.cluster.postgres.nodes['dc2-db'].host}:5432`, "the site hook repointed dc2's app");
    assert.deepEqual(
      result.hooks.map((x) => [x.hook, x.exitCode]),
      [['repoint-app', 0]],
    );
    assert.deepEqual(
      result.traffic.map((t) => [t.driver, t.site]),
      [
        ['front', 'dc2'],
        ['eip', 'dc2'],
        ['vip', 'dc2'],
        ['dns', 'dc2'],
      ],
    );

    // The step log tells the story in order: the front right after the guard, then the hook, the
    // services and the other drivers side by side, maintenance off once they all ended.
    const done = await h.query<Progress>('progress');
    const names = done.steps.filter((s) => s.state === 'done').map((s) => s.name);
    const order = [
      'lock',
      'checkpoint:old-primary-dead',
      'checkpoint:accept-data-loss',
      'recheck:dc1-db',
      'promote',
      'write-probe:dc2-db',
      'guard',
      'traffic:front',
      'front-verified',
      'maintenance-off:dc2',
      'unlock',
    ];
    const at = order.map((n) => names.indexOf(n));
    assert.ok(
      at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])),
      `steps in order ${order.join(' → ')}; got ${names.join(', ')}`,
    );
    const step = (n: string) => done.steps.find((s) => s.name === n && s.state === 'done')!;
    const side = [
      'hook:repoint-app',
      ...Object.keys(st.cluster.sites.dc2.services).map((s) => `service-start:dc2/${s}`),
      'traffic:eip',
      'traffic:vip',
      'traffic:dns',
    ];
    for (const n of side) {
      assert.ok(step(n), `${n} done; got ${names.join(', ')}`);
      assert.ok(step(n).startedAt >= step('traffic:front').endedAt!, `${n} started once the front was verified`);
      assert.ok(step(n).endedAt! <= step('maintenance-off:dc2').startedAt, `${n} ended before maintenance off`);
    }
    // The services keep their declared order, one after the other.
    const services = Object.keys(st.cluster.sites.dc2.services).map((s) => step(`service-start:dc2/${s}`));
    for (let i = 1; i < services.length; i++) assert.ok(services[i].startedAt >= services[i - 1].endedAt!, `${services[i].name} after ${services[i - 1].name}`);
    // Side by side: the hook, the first service and the other drivers all started before any of them ended.
    const together = ['hook:repoint-app', `service-start:dc2/${Object.keys(st.cluster.sites.dc2.services)[0]}`, 'traffic:eip', 'traffic:vip', 'traffic:dns'];
    const lastStart = together
      .map((n) => step(n).startedAt)
      .sort()
      .at(-1)!;
    const firstEnd = together.map((n) => step(n).endedAt!).sort()[0];
    assert.ok(lastStart <= firstEnd, `started side by side: ${together.map((n) => `${n} ${step(n).startedAt}–${step(n).endedAt}`).join(', ')}`);
    assert.match(step('front-verified').detail, /^front on dc2, verified \d+(\.\d)? s after the decision to promote$/);
    assert.equal(done.waitingFor, null);

    // The webhook heard the start, the checkpoint (with its prompt) and the end; never its own URL.
    const events = hooks.map((x) => x.event);
    for (const e of ['failover.started', 'checkpoint.waiting', 'failover.completed'])
      assert.ok(events.includes(e), `webhook got ${e}; got ${events.join(', ')}`);
    assert.match(hooks.find((x) => x.event === 'checkpoint.waiting')!.message, /old-primary-dead.*actually is dead/);
    assert.ok(!JSON.stringify(await h.fetchHistory()).includes('secret-token'), 'the webhook URL never enters history');
  });
});

describe('failover: dc1 reachable', () => {
  let st: Stage;
  before(async () => {
    st = await startStage();
  });
  after(async () => {
    await st?.down();
  });

  const snapshot = async () => ({
    dc1: (await st.nodeQuery('dc1-db', 'SELECT pg_is_in_recovery() AS r'))[0].r,
    dc2: (await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS r'))[0].r,
    front: (await st.frontQuery('SELECT host(inet_server_addr()) AS s'))[0].s,
    eip: await st.eipNode(),
    m1: await st.maintenance('dc1'),
    m2: await st.maintenance('dc2'),
    services: await Promise.all(['dc1', 'dc2'].flatMap((site) => Object.keys(st.cluster.sites[site].services).map((s) => st.serviceRunning(site, s)))),
  });

  it('a dry run returns the plan and changes nothing', async () => {
    const before = await snapshot();
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', dryRun: true }, `failover-dry-${Date.now()}`);
    const r = (await h.result()) as FailoverResult;
    assert.equal(r.outcome, 'planned');
    assert.equal(r.dryRun, true);
    assert.deepEqual(r.to, { site: 'dc2', node: 'dc2-db' });
    const plan = Object.fromEntries(r.plan.map((p) => [p.step, p.action]));
    assert.match(plan.fence, /pg_ctl stop -m fast/);
    assert.match(plan['checkpoint:old-primary-dead'], /only if fencing is not confirmed/);
    assert.match(plan['traffic:front'], /move from dc1 to dc2, first: what clients use/);
    const order = r.plan.map((x) => x.step);
    assert.ok(
      order.indexOf('traffic:front') < order.indexOf('hook:repoint-app') && order.indexOf('hook:repoint-app') < order.indexOf('traffic:dns'),
      order.join(', '),
    );
    assert.match(plan.promote, /pg_promote on dc2-db/);
    assert.deepEqual(await snapshot(), before);
    const p = await h.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^(lock|fence|promote|maintenance-on:.*|service-stop:.*)$/).length, 0, 'no mutating step ran');
  });

  it('fences dc1 without a checkpoint (exact data loss from its shutdown checkpoint); afterwards dc1 refuses connections', async () => {
    const id = (await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('just before the failover') RETURNING id`))[0].id;
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 degraded' }, `failover-reachable-${Date.now()}`);
    const r = (await h.result()) as FailoverResult;
    assert.equal(r.outcome, 'completed');
    assert.equal(r.fenced, true);
    assert.deepEqual(r.checkpoints, [], 'no checkpoint when the old primary was fenced and confirmed down');
    assert.equal(r.dataLoss?.source, 'shutdown-checkpoint');
    assert.equal(r.dataLoss?.exact, true);
    assert.equal(r.dataLostBytes, 0);
    assert.equal(await st.nodeAnswers('dc1-db'), false, 'dc1 refuses connections');
    // The fence lasts: a restart would come up read-only, and the marker says who fenced it for whom.
    const dataDir = st.cluster.postgres.nodes['dc1-db'].dataDir;
    assert.ok(existsSync(join(dataDir, 'standby.signal')), "standby.signal in dc1's data directory");
    const marker = JSON.parse(readFileSync(join(dataDir, 'switchyard-fence.json'), 'utf8')) as { fencedBy: string; newPrimary: string };
    assert.deepEqual([marker.fencedBy, marker.newPrimary], [h.workflowId, 'dc2-db']);
    const p = await h.query<Progress>('progress');
    assert.match(stepsNamed(p, /^fence$/)[0].detail, /fast.*marked \(standby\.signal \+ fence marker\)/);
    assert.equal(stepsNamed(p, /^maintenance-on:dc1$/)[0].state, 'done');
    for (const svc of Object.keys(st.cluster.sites.dc1.services)) assert.equal(await st.serviceRunning('dc1', svc), false, `${svc} stopped at dc1`);
    for (const svc of Object.keys(st.cluster.sites.dc2.services)) assert.equal(await st.serviceRunning('dc2', svc), true, `${svc} runs at dc2`);
    assert.equal((await st.maintenance('dc1')).on, true, 'the old site stays in maintenance');
    const rows = await st.frontQuery('SELECT id, host(inet_server_addr()) AS s FROM public.sandbox_rows WHERE id = $1', [id]);
    assert.equal(rows.length, 1, 'the last acknowledged row is on the new primary');
    assert.equal(rows[0].s, st.cluster.postgres.nodes['dc2-db'].host);
    assert.equal(await st.eipNode(), 'dc2-db');
  });

  it('a failover with no standby left is refused before anything changes', async () => {
    // dc2 is primary now and dc1 is down: nothing can be promoted.
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-nothing-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'PreconditionFailed');
    assert.match(f.message, /no standby to promote: the only reachable primary is dc2-db.*`switchyard failover demo --to dc2` finishes it/);
  });
});

describe('failover: standby behind (its WAL receiver stopped while writes continue)', () => {
  let st: Stage;
  before(async () => {
    st = await startStage();
  });
  after(async () => {
    await st?.down();
  });

  it('accept-data-loss shows the bytes; rejected, nothing is promoted and the old primary is put back', async () => {
    // dc2 cut off from dc1's WAL while writes continue on dc1: it falls behind in what it received.
    await st.standbyFallsBehind('dc2-db', 500);
    const tl = await timelineOf(st, 'dc2-db');

    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-behind-${Date.now()}`);
    const p = await st.waitProgress(h.workflowId, waitingAt('accept-data-loss'), 'the accept-data-loss checkpoint');
    const prompt = stepsNamed(p, /^checkpoint:accept-data-loss$/)[0].detail;
    const bytes = Number(/behind the old primary by (\d+) bytes/.exec(prompt)?.[1]);
    assert.ok(bytes > 0, `a positive byte count in: ${prompt}`);
    assert.equal(stepsNamed(p, /^fence$/)[0].state, 'done');

    const answer = await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'reject', by: 'bob', comment: 'too much to lose' });
    assert.equal(answer.accepted, true);
    const r = (await h.result()) as FailoverResult;
    assert.equal(r.outcome, 'aborted');
    assert.match(r.abortedBecause ?? '', /accept-data-loss rejected by bob/);
    assert.match(r.state, /nothing was promoted/);
    assert.match(r.state, /undone: .*unfence dc1-db/);
    assert.equal(r.topology.primarySite, 'dc1');
    assert.equal(existsSync(join(st.cluster.postgres.nodes['dc1-db'].dataDir, 'switchyard-fence.json')), false, 'the undone fence leaves no marker');
    assert.equal(existsSync(join(st.cluster.postgres.nodes['dc1-db'].dataDir, 'standby.signal')), false, 'nor standby.signal');

    const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(dc2.standby, true, 'dc2 was not promoted');
    assert.equal(await timelineOf(st, 'dc2-db'), tl);
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after the abort') RETURNING host(inet_server_addr()) AS s`);
    assert.equal(w.s, st.cluster.postgres.nodes['dc1-db'].host, 'dc1 is primary again and takes writes through the front');
    assert.deepEqual(await st.maintenance('dc1'), { on: false, http: 200 });
    for (const svc of Object.keys(st.cluster.sites.dc1.services)) assert.equal(await st.serviceRunning('dc1', svc), true, `${svc} runs at dc1 again`);
    assert.equal(await st.eipNode(), 'dc1-db');
  });
});

describe('failover: the worker killed with SIGKILL while the run waits at a checkpoint, and again during promotion', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({ worker: false, edit: (c) => void (c.failover = { ...((c.failover as object) ?? {}), dataLossFreshness: '1s' }) });
  });
  after(async () => {
    await stopWorkerProcesses();
    await st?.down();
  });

  it('a restarted worker finishes the run; the timeline advanced exactly once', async () => {
    const worker = () => startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    let w = worker();
    await w.waitFor((l) => l.msg === 'worker started');
    await st.client.workflow.execute('readiness', { taskQueue: 'switchyard', workflowId: `readiness-${Date.now()}`, args: [{ cluster: 'demo' }] });
    const tl = await timelineOf(st, 'dc2-db');
    await stopPart(st.sb.opts, 'dc1', 'kill');

    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-crash-${Date.now()}`);
    await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
    assert.equal((await w.kill('SIGKILL')).signal, 'SIGKILL');

    // A new worker picks the run up where it waits; the decision reaches it.
    w = worker();
    await w.waitFor((l) => l.msg === 'worker started');
    const answer = await decide(st.client, h.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
    assert.equal(answer.accepted, true);
    await st.waitProgress(h.workflowId, waitingAt('accept-data-loss'), 'the accept-data-loss checkpoint');
    assert.equal((await decide(st.client, h.workflowId, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' })).accepted, true);
    // Killed again the moment the run asks for the promotion.
    await w.waitFor((l) => l.workflowId === h.workflowId && l.msg === 'step promote started', 120_000);
    await w.kill('SIGKILL');

    w = worker();
    const result = (await h.result()) as FailoverResult;
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.timeline, { before: tl, after: tl + 1 });
    assert.equal(await timelineOf(st, 'dc2-db'), tl + 1, 'promoted once: one new timeline');
    const [role] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(role.standby, false);
    assert.equal(await st.eipNode(), 'dc2-db');
    const p = await h.query<Progress>('progress');
    assert.equal(stepsNamed(p, /^promote$/).filter((s) => s.state === 'done').length, 1);
    assert.equal(stepsNamed(p, /^checkpoint:old-primary-dead$/)[0].state, 'done');
    await w.stop();
  });
});

describe('failover: a cluster that always asks, with a short deadline and the instance stop on', () => {
  let st: Stage;
  before(async () => {
    st = await startStage({
      edit: (c) => {
        c.checkpoints = { approvers: [], twoPerson: false, remindAfter: '2s', deadline: '6s', onDeadline: 'abort' };
        c.failover = { confirmOldPrimaryDead: 'always', stopInstance: true };
      },
    });
  });
  after(async () => {
    await st?.down();
  });

  it('no decision before the deadline: reminded, then stopped safely; the fence is undone and the state names the stopped instance', async () => {
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-deadline-${Date.now()}`);
    const r = (await h.result()) as FailoverResult;
    assert.equal(r.outcome, 'aborted');
    assert.match(r.abortedBecause ?? '', /no decision at old-primary-dead before its deadline/);
    assert.match(r.state, /undone: .*unfence dc1-db/);
    assert.match(r.state, /EC2 instance of dc1-db is stopped/);
    const p = await h.query<Progress>('progress');
    assert.ok(stepsNamed(p, /^reminder:old-primary-dead$/).length >= 1, 'a reminder went out before the deadline');
    assert.match(stepsNamed(p, /^checkpoint:old-primary-dead$/)[0].detail, /no decision within the deadline/);
    assert.match(stepsNamed(p, /^stop-instance:dc1-db$/)[0].detail, /stopped/);
    const [dc1] = await st.nodeQuery('dc1-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(dc1.standby, false, 'dc1 is primary again');
    const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(dc2.standby, true, 'nothing was promoted');
    assert.equal((await st.maintenance('dc1')).on, false);
  });

  it('approved while the old primary still answers as a primary: refused, nothing promoted, what it changed undone', async () => {
    await stopPart(st.sb.opts, 'dc1-db/sshd'); // PostgreSQL cannot be stopped from here, but it still runs
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-alive-${Date.now()}`);
    await st.waitProgress(h.workflowId, waitingAt('old-primary-dead'), 'the old-primary-dead checkpoint');
    assert.equal(await st.serviceRunning('dc1', 'notification'), false, "the old site's services were stopped first");
    const answer = await decide(st.client, h.workflowId, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob' });
    assert.equal(answer.accepted, true);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'PreconditionFailed');
    assert.match(f.message, /dc1-db .* still accepts connections as a primary/);
    assert.match(f.message, /State: nothing was promoted.*undone: .*maintenance off at dc1/);
    const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(dc2.standby, true);
    for (const svc of Object.keys(st.cluster.sites.dc1.services)) assert.equal(await st.serviceRunning('dc1', svc), true, `${svc} runs at dc1 again`);
    assert.deepEqual(await st.maintenance('dc1'), { on: false, http: 200 });
  });
});
