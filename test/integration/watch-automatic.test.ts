/**
 * Automatic mode (failover.automatic: true) with dc1 reachable but failing: its PostgreSQL stops,
 * its host still answers over SSH. The watch stages the failover as automatic; the run fences dc1
 * itself (marker, standby.signal), measures the loss exactly (a clean shutdown checkpoint) and
 * promotes dc2 without asking anyone. dc1 rejoins; then dc2's PostgreSQL stops the same way, right
 * after: anti-flapping holds, the failover staged for it waits for a person at old-primary-dead
 * and the refusal is notified with its reason, until carol acknowledges the first in the console.
 * Meanwhile the worker is SIGKILLed while the watch counts failed probes of dc2 and Temporal is
 * restarted once the failover is staged: still exactly one failover for that outage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPart, stopPart } from '../../sandbox';
import { ConsoleSession } from '../../src/client/console/api-client';
import { startConsole } from '../../src/client/console/server';
import { decide } from '../../src/client/runs';
import { sandboxPassword } from '../../sandbox/access';
import type { Progress } from '../../src/contract/messages';
import { watchWorkflowId } from '../../src/contract/watch';
import { TASK_QUEUE } from '../../src/temporal-target';
import type { FailoverResult } from '../../src/workflows/failover';
import { cli, killClis } from '../support/cli';
import type { Stage } from '../support/stage';
import { watchUntil } from '../support/watch';
import { startWorkerProcess, stopWorkerProcesses, type WorkerProcess } from '../support/worker';
import { stageNotifying, type Webhook } from '../support/webhook';

describe('watch in automatic mode: fenced by itself, promoted without a person, and no second automatic failover before an acknowledgement', () => {
  let st: Stage;
  let hook: Webhook;
  before(async () => {
    (({ st, hook } = await stageNotifying((c) => void (c.failover = { ...((c.failover as object) ?? {}), automatic: true, automaticCoolDown: '1h' }))),
      {
        worker: false,
      });
    // A worker process: the second outage kills it.
    worker = await startWorker();
  });
  let worker: WorkerProcess;
  let first = '';
  const startWorker = async (): Promise<WorkerProcess> => {
    const w = startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    await w.waitFor((l) => l.msg === 'worker started', 90_000);
    return w;
  };
  after(async () => {
    killClis();
    await stopWorkerProcesses();
    await st?.down();
    await hook?.close();
  });

  it('dc1 PostgreSQL stopped, SSH up: fenced and promoted without a person', async () => {
    await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('before the automatic failover')`);
    await st.client.workflow.start('watch', {
      taskQueue: TASK_QUEUE,
      workflowId: watchWorkflowId('demo'),
      args: [{ cluster: 'demo', everySeconds: 1, failures: 2, requestedBy: 'alice' }],
    });
    const s0 = await watchUntil(st, (x) => x.primary === 'dc1-db' && x.verdict === 'ok', 'dc1-db as the primary');
    assert.equal(s0.automatic.enabled, true);
    await stopPart(st.sb.opts, 'dc1-db/postgres', 'stop');
    const staged = await watchUntil(st, (x) => x.staged !== null, 'a staged failover');
    assert.equal(staged.staged?.automatic, true);
    const id = staged.staged!.workflowId;
    first = id;
    const r = (await st.client.workflow.getHandle(id).result()) as FailoverResult;
    assert.equal(r.outcome, 'completed', r.abortedBecause ?? '');
    assert.equal(r.topology.primaryNode, 'dc2-db');
    assert.deepEqual(r.checkpoints, [], 'no person was asked');
    assert.equal(r.fenced, true);
    assert.equal(r.dataLoss?.exact, true);
    assert.equal(r.dataLostBytes, 0);
    const auto = r.steps.find((x) => x.name === 'automatic');
    assert.match(
      auto?.detail ?? '',
      /no person was asked: staged by switchyard-watch-demo in automatic mode; dc1-db was fenced and confirmed down by this run/,
    );
    assert.deepEqual(
      (await st.frontQuery(`SELECT note FROM public.sandbox_rows WHERE note = 'before the automatic failover'`)).map((x) => x.note),
      ['before the automatic failover'],
    );
    // The fence markers are read again once the primary moved (and at least every 30 s).
    const seen = await watchUntil(
      st,
      (x) => x.primary === 'dc2-db' && x.formerPrimaries.some((f) => f.fence === 'marked'),
      'dc2-db as the primary, dc1 fenced',
    );
    assert.equal(seen.automatic.antiFlap.last?.workflowId, id);
    assert.equal(seen.automatic.antiFlap.ackedBy, null);
    assert.deepEqual(
      seen.formerPrimaries.map((f) => [f.node, f.fence, f.fencedBy]),
      [['dc1-db', 'marked', id]],
    );
  });

  it('a second outage right after waits for a person (anti-flapping) until the first is acknowledged', async () => {
    const rejoin = await st.start('rejoin', { cluster: 'demo', node: 'dc1-db', requestedBy: 'alice' });
    await rejoin.result();
    await watchUntil(
      st,
      (x) => x.formerPrimaries.length === 0 && x.probes.some((p) => p.node === 'dc1-db' && p.verdict === 'standby'),
      'dc1-db a standby again',
    );
    await stopPart(st.sb.opts, 'dc2-db/postgres', 'stop');
    // The worker is SIGKILLed while the watch counts, and Temporal restarted once it staged.
    await watchUntil(st, (x) => x.confirmedFailures >= 1, 'a first failed probe of dc2');
    await worker.kill('SIGKILL');
    worker = await startWorker();
    const staged = await watchUntil(st, (x) => x.staged !== null && x.primary === 'dc2-db', 'a second staged failover', 120_000);
    assert.equal(staged.staged?.automatic, false);
    const id = staged.staged!.workflowId;
    await stopPart(st.sb.opts, 'temporal');
    await startPart(st.sb.opts, 'temporal');
    const ticks = (await watchUntil(st, () => true, 'an answer after the restart', 120_000)).ticks;
    const later = await watchUntil(st, (x) => x.ticks >= ticks + 4, 'four more probes', 120_000);
    assert.equal(later.staged?.workflowId, id);
    assert.equal(later.verdict, 'staged');
    const failovers: string[] = [];
    for await (const f of st.client.workflow.list({ query: `WorkflowType = 'failover'` })) failovers.push(f.workflowId);
    assert.deepEqual(failovers.sort(), [first, id].sort(), 'one failover per outage, whatever was interrupted');
    const watchSteps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
    assert.ok(
      watchSteps.some((x) => x.name === 'not-staged' && x.detail?.includes(`failover ${id} was staged for this outage`)),
      JSON.stringify(watchSteps.map((x) => x.name)),
    );
    // Fenced by the run, yet a person must decide: the first automatic failover is not acknowledged.
    const p = await st.waitProgress(id, (x) => x.waitingFor === 'old-primary-dead', 'the second failover at old-primary-dead', 90_000);
    assert.equal(p.steps.find((s) => s.name === 'fence')?.state, 'done');
    assert.match(
      p.waiting?.prompt ?? '',
      /staged by the watch \(switchyard-watch-demo\), not started by a person; anti-flapping: the automatic failover failover-demo-watch-\S+ at \S+ is not acknowledged/,
    );
    const refused = await hook.waitFor((n) => n.event === 'watch.automatic-refused', 'the refusal of an automatic failover');
    assert.match(
      refused.message,
      /automatic failover of demo refused: anti-flapping: .* is not acknowledged and its cool-down ends at \S+ \(acknowledge it with `switchyard watch ack demo`\); failover \S+ waits for a person/,
    );

    // The console shows it, and carol acknowledges there (signed in: the name is the session's).
    const web = await startConsole({
      configPath: st.configPath,
      target: st.target,
      log: () => undefined,
    });
    try {
      const carol = await ConsoleSession.signIn(web.url, 'carol', sandboxPassword(st.sb.status.console!.operators, 'carol'));
      const page = (await carol.get('/clusters/demo')).text;
      assert.match(page, /Last automatic failover .*<strong>not acknowledged<\/strong>/s);
      assert.match(page, /Acknowledge as carol/);
      const a = await carol.acknowledge('demo', 'dc1 looked at');
      assert.equal(a.outcome, 'accepted', a.reason);
    } finally {
      await web.close();
    }
    const ack = await cli(st, ['watch', 'ack', 'demo', '--as', 'dave']);
    assert.equal(ack.code, 0, ack.stderr);
    assert.match(ack.stdout, /^the automatic failover failover-demo-watch-\S+ was already acknowledged by carol\n$/);
    const after = await watchUntil(st, (x) => x.automatic.antiFlap.ackedBy === 'carol', 'the acknowledgement');
    assert.ok(after.automatic.antiFlap.ackedAt);
    const steps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
    assert.ok(steps.some((s) => s.name === 'ack' && /carol acknowledged the automatic failover .* \(dc1 looked at\)/.test(s.detail ?? '')));
    // The waiting one stays a person's call: rejected, nothing is promoted.
    const d = await decide(st.client, id, { checkpoint: 'old-primary-dead', decision: 'reject', by: 'carol', comment: 'not now' });
    assert.ok(d.accepted, d.accepted ? '' : d.reason);
    const r = (await st.client.workflow.getHandle(id).result()) as FailoverResult;
    assert.equal(r.outcome, 'aborted');
    await st.client.workflow.getHandle(watchWorkflowId('demo')).signal('stop', { by: 'alice' });
    await st.client.workflow.getHandle(watchWorkflowId('demo')).result();
  });
});
