/**
 * The watch on the sandbox: started from the CLI (one per cluster). First dc1 is cut off from the
 * worker alone (sandbox partitionFromWorker: the worker's packets to dc1 dropped, dc2's vantage
 * host still reaching it): a partition, warned about once, never a failover. Then dc1 is killed while it probes
 * every second; once three probes in a row found no primary, from the worker and from dc2's
 * vantage host, it notifies (with the console's link to the staged run) and stages a failover that
 * waits at old-primary-dead with requestedBy "watch" and the evidence as its reason; a person
 * approves and dc2 becomes primary; the watch then reports dc1 as the fenced former primary that
 * needs rejoin, and stops when asked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { healPartition, partitionFromWorker, partitionUnsupported, stopPart } from '../../sandbox';
import type { Progress } from '../../src/contract/messages';
import { consoleLink } from '../../src/contract/console-links';
import { watchWorkflowId } from '../../src/contract/watch';
import { consoleUrl } from '../../src/topology/operators';
import { TASK_QUEUE } from '../../src/temporal-target';
import { cli, killClis } from '../support/cli';
import { failureOf, sleep } from '../support/runs';
import type { Stage } from '../support/stage';
import { approveUntilDone, watchStatus, watchUntil } from '../support/watch';
import { stageNotifying, type Webhook } from '../support/webhook';

const unsupported = partitionUnsupported();

describe('watch: a partition is no outage; a dc1 outage stages a failover that a person approves', () => {
  let st: Stage;
  let hook: Webhook;
  before(async () => {
    ({ st, hook } = await stageNotifying());
  });
  after(async () => {
    killClis();
    if (st) healPartition(st.sb.opts);
    await st?.down();
    await hook?.close();
  });

  it('one watch per cluster: the CLI starts it once; a watch under another id is refused', async () => {
    const started = await cli(st, ['watch', 'demo', '--every', '1s', '--failures', '3', '--as', 'alice']);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout, `watching demo as ${watchWorkflowId('demo')}: every 1 s, a failover staged after 3 failed probes\n`);
    const again = await cli(st, ['watch', 'demo']);
    assert.equal(again.stdout, `demo is already watched (${watchWorkflowId('demo')}); see: switchyard watch status demo\n`);
    const s = await watchUntil(st, (x) => x.primary === 'dc1-db' && x.verdict === 'ok', 'dc1-db as the primary, all well');
    assert.deepEqual(
      s.probes.map((p) => [p.node, p.verdict]),
      [
        ['dc1-db', 'primary'],
        ['dc2-db', 'standby'],
      ],
    );
    assert.deepEqual(s.incidents, [], 'no warning on a healthy sandbox');
    const text = await cli(st, ['watch', 'status', 'demo']);
    assert.match(text.stdout, /^watch of demo: ok; primary dc1-db; 0 failed probe\(s\) in a row seen from every site \(a failover is staged at 3\)/);
    const list = await cli(st, ['watch', 'list']);
    assert.equal(list.stdout, `${watchWorkflowId('demo')}\n`);
    // The verdict is a search attribute: the UI and `temporal workflow list` find it.
    const found: string[] = [];
    for await (const w of st.client.workflow.list({ query: `SwitchyardVerdict = 'ok' AND WorkflowType = 'watch'` })) found.push(w.workflowId);
    assert.deepEqual(found, [watchWorkflowId('demo')]);
    const other = await st.client.workflow.start('watch', { taskQueue: TASK_QUEUE, workflowId: 'my-watch', args: [{ cluster: 'demo', requestedBy: 'alice' }] });
    const f = await failureOf(other.result());
    assert.equal(f.type, 'ConfigError');
    assert.match(f.message, /a watch of demo runs as workflow switchyard-watch-demo \(one per cluster\), not my-watch/);
  });

  it(
    'dc1 cut off from the worker only: a partition, not an outage; no failover staged, warned once, and the warning ends when it heals',
    { skip: unsupported ?? false },
    async () => {
      await watchUntil(st, (x) => x.primary === 'dc1-db' && x.verdict === 'ok', 'dc1-db as the primary, all well');
      const cut = partitionFromWorker(st.sb.opts, 'dc1');
      try {
        await partitioned(cut);
      } finally {
        healPartition(st.sb.opts);
      }
      await watchUntil(st, (x) => x.primary === 'dc1-db' && x.consecutiveFailures === 0, 'dc1-db answering the worker again', 120_000);
      const warned = hook.received.find((n) => n.event === 'watch.warning' && n.fields.incident === 'partition:dc1-db')!;
      const ended = await hook.waitFor(
        (n) => n.event === 'watch.warning-ended' && n.fields.incident === 'partition:dc1-db',
        'the end of the partition warning',
      );
      assert.equal(ended.fields.since, warned.fields.since);
      assert.ok(Date.parse(String(ended.fields.until)) > Date.parse(String(ended.fields.since)), JSON.stringify(ended.fields));
      const steps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
      assert.ok(!steps.some((s) => s.name === 'staged'), 'nothing staged');
    },
  );

  async function partitioned(cut: string[]): Promise<void> {
    assert.deepEqual(cut.sort(), [`127.${st.sb.net}.1.1`, `127.${st.sb.net}.1.2`]);
    const seen = await watchUntil(st, (x) => x.verdict === 'partition', 'the partition verdict', 120_000);
    assert.deepEqual(
      seen.vantage.filter((v) => v.node === 'dc1-db').map((v) => [v.from, v.verdict]),
      [['dc2-app', 'accepting']],
    );
    const warned = await hook.waitFor((n) => n.event === 'watch.warning' && n.fields.incident === 'partition:dc1-db', 'the partition warning', 120_000);
    assert.match(
      warned.message,
      /dc1-db does not answer the worker but 127\.\d+\.1\.1:5432 accepts connections, seen from dc2-app \(dc2\): a partition between the worker and dc1-db's site, not an outage; no failover is staged/,
    );
    // Well past the three failures that would stage a failover for a dead dc1: none is.
    const during = await watchUntil(st, (x) => x.consecutiveFailures >= 4, 'four failed probes during the partition', 120_000);
    assert.equal(during.verdict, 'partition');
    assert.equal(during.staged, null);
    assert.equal(during.confirmedFailures, 0);
    const failovers: string[] = [];
    for await (const w of st.client.workflow.list({ query: `WorkflowType = 'failover'` })) failovers.push(w.workflowId);
    assert.deepEqual(failovers, [], 'no failover was started');
    assert.equal(hook.received.filter((n) => n.fields.incident === 'partition:dc1-db' && n.event === 'watch.warning').length, 1, 'warned once');
  }

  it('dc1 killed: a failover is staged and notified, waits at old-primary-dead, and once approved the watch sees dc2 and the fenced dc1', async () => {
    // The last readiness reading gives the staged failover dc1's position.
    await (await st.start('readiness', { cluster: 'demo' })).result();
    const killedAt = Date.now();
    await stopPart(st.sb.opts, 'dc1', 'kill');
    const staged = await watchUntil(st, (x) => x.staged !== null, 'a staged failover');
    const stagedMs = Date.now() - killedAt;
    assert.ok(staged.confirmedFailures >= 3, JSON.stringify(staged));
    // dc2's vantage host saw dc1's PostgreSQL gone too.
    assert.deepEqual(
      staged.vantage.filter((v) => v.node === 'dc1-db').map((v) => [v.from, v.verdict]),
      [['dc2-app', 'no-answer']],
    );
    assert.equal(staged.staged?.automatic, false);
    const id = staged.staged!.workflowId;
    const p = await st.waitProgress(id, (x) => x.waitingFor === 'old-primary-dead', 'the staged failover at old-primary-dead', 90_000);
    const plan = p.steps.find((s) => s.name === 'plan')?.detail ?? '';
    assert.match(
      plan,
      /watch: no node answers as the primary .*confirmed from the other site\(s\): 127\.\d+\.1\.1:5432 does not answer, seen from dc2-app \(dc2\)/,
    );
    assert.match(plan, /3 probes 1 s apart/);
    // The notification carried the console's link to the staged run.
    const n = await hook.waitFor((x) => x.event === 'watch.failover-staged', 'watch.failover-staged');
    assert.match(n.message, new RegExp(`failover ${id} staged, waiting for a person`));
    assert.ok(st.topology.console, 'the sandbox has a console');
    assert.equal(n.link, consoleLink(consoleUrl(st.topology.console)!, id, null));
    process.stdout.write(`watch: dc1 killed → failover staged in ${stagedMs} ms (every 1 s, 3 failures)\n`);
    // No second failover for the same outage, however long it lasts.
    await sleep(4000);
    const later = await watchStatus(st);
    assert.equal(later.staged?.workflowId, id);
    assert.equal(later.verdict, 'staged');
    assert.equal((await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps.filter((s) => s.name === 'staged').length, 1);

    const r = await approveUntilDone(st, id, 'bob');
    assert.equal(r.outcome, 'completed', r.abortedBecause ?? '');
    assert.equal(r.requestedBy, 'watch');
    assert.deepEqual(
      r.checkpoints.map((c) => [c.checkpoint, c.decision, c.by]),
      r.checkpoints.map((c) => [c.checkpoint, 'approve', 'bob']),
    );
    const after = await watchUntil(st, (x) => x.primary === 'dc2-db' && x.formerPrimaries.length > 0, 'dc2-db as the primary and dc1 as the former one');
    assert.equal(after.consecutiveFailures, 0);
    assert.equal(after.staged, null, 'the outage is over');
    // dc1 is down: its fence marker cannot be read, and the watch says so.
    assert.deepEqual(
      after.formerPrimaries.map((f) => [f.node, f.newPrimary, f.fence, f.answers, f.rejoin]),
      [['dc1-db', 'dc2-db', 'unreadable', false, 'switchyard rejoin demo --node dc1-db']],
    );
    const text = await cli(st, ['watch', 'status', 'demo']);
    assert.match(
      text.stdout,
      /former primary dc1-db \(replaced by dc2-db since \S+\): its fence cannot be read \(its host does not answer\); needs `switchyard rejoin demo --node dc1-db`/,
    );
    // The watch's step log says where the primary went and what the former one needs.
    const steps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
    assert.ok(
      steps.some((x) => x.name === 'primary-moved' && /dc2-db is the primary now; the former primary dc1-db needs/.test(x.detail ?? '')),
      JSON.stringify(steps),
    );

    const stop = await cli(st, ['watch', 'stop', 'demo', '--as', 'alice']);
    assert.equal(stop.code, 0, stop.stderr);
    const end = (await st.client.workflow.getHandle(watchWorkflowId('demo')).result()) as { stoppedBy: string };
    assert.equal(end.stoppedBy, 'alice');
  });

  it('continues as new, carrying what it saw', async () => {
    const h = await st.client.workflow.start('watch', {
      taskQueue: TASK_QUEUE,
      workflowId: watchWorkflowId('demo'),
      args: [{ cluster: 'demo', everySeconds: 1, failures: 3, ticksPerRun: 2, requestedBy: 'alice' }],
    });
    const s = await watchUntil(st, (x) => x.ticks >= 5, 'five probes');
    assert.equal(s.primary, 'dc2-db');
    const d = await st.client.workflow.getHandle(watchWorkflowId('demo')).describe();
    assert.notEqual(d.runId, h.firstExecutionRunId, 'a later run of the same watch');
    await st.client.workflow.getHandle(watchWorkflowId('demo')).signal('stop', { by: 'alice' });
    const end = (await st.client.workflow.getHandle(watchWorkflowId('demo')).result()) as { stoppedBy: string };
    assert.equal(end.stoppedBy, 'alice');
  });
});
