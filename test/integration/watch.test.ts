/**
 * The watch on the sandbox: started from the CLI (one per cluster), dc1 killed while it probes
 * every second; after three failed probes it stages a failover that waits at old-primary-dead with
 * requestedBy "watch" and the evidence as its reason; a person approves and dc2 becomes primary;
 * the watch then sees dc2 as the primary and its outage as over, and stops when asked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stopPart } from '../../sandbox';
import { decide } from '../../src/client/runs';
import type { Progress } from '../../src/contract/messages';
import { watchStatusQuery, watchWorkflowId, type WatchStatus } from '../../src/contract/watch';
import { TASK_QUEUE } from '../../src/temporal-target';
import type { FailoverResult } from '../../src/workflows/failover';
import { cli, killClis } from '../support/cli';
import { failureOf, sleep } from '../support/runs';
import { startStage, type Stage } from '../support/stage';

describe('watch: a dc1 outage stages a failover that a person approves', () => {
  let st: Stage;
  before(async () => {
    st = await startStage();
  });
  after(async () => {
    killClis();
    await st?.down();
  });

  const status = () => st.client.workflow.getHandle(watchWorkflowId('demo')).query(watchStatusQuery);
  async function statusUntil(pred: (s: WatchStatus) => boolean, what: string, ms = 90_000): Promise<WatchStatus> {
    let s: WatchStatus | null = null;
    for (const end = Date.now() + ms; Date.now() < end; await sleep(250)) {
      s = await status().catch(() => null);
      if (s && pred(s)) return s;
    }
    assert.fail(`the watch never showed ${what}: ${JSON.stringify(s, null, 2)}`);
  }

  it('one watch per cluster: the CLI starts it once; a watch under another id is refused', async () => {
    const started = await cli(st, ['watch', 'demo', '--every', '1s', '--failures', '3', '--as', 'alice']);
    assert.equal(started.code, 0, started.stderr);
    assert.equal(started.stdout, `watching demo as ${watchWorkflowId('demo')}: every 1 s, a failover staged after 3 failed probes\n`);
    const again = await cli(st, ['watch', 'demo']);
    assert.equal(again.stdout, `demo is already watched (${watchWorkflowId('demo')}); see: switchyard watch status demo\n`);
    const s = await statusUntil((x) => x.primary === 'dc1-db', 'dc1-db as the primary');
    assert.deepEqual(
      s.probes.map((p) => [p.node, p.verdict]),
      [
        ['dc1-db', 'primary'],
        ['dc2-db', 'standby'],
      ],
    );
    const text = await cli(st, ['watch', 'status', 'demo']);
    assert.match(text.stdout, /^watch of demo: primary dc1-db; 0 failed probe\(s\) in a row \(a failover is staged at 3\)/);
    const list = await cli(st, ['watch', 'list']);
    assert.equal(list.stdout, `${watchWorkflowId('demo')}\n`);
    const other = await st.client.workflow.start('watch', { taskQueue: TASK_QUEUE, workflowId: 'my-watch', args: [{ cluster: 'demo', requestedBy: 'alice' }] });
    const f = await failureOf(other.result());
    assert.equal(f.type, 'ConfigError');
    assert.match(f.message, /a watch of demo runs as workflow switchyard-watch-demo \(one per cluster\), not my-watch/);
  });

  it('dc1 killed: a failover is staged, waits at old-primary-dead, and once approved dc2 is the primary the watch sees', async () => {
    // The last readiness reading gives the staged failover dc1's position.
    await (await st.start('readiness', { cluster: 'demo' })).result();
    await stopPart(st.sb.opts, 'dc1', 'kill');
    const staged = await statusUntil((x) => x.staged !== null, 'a staged failover');
    assert.ok(staged.consecutiveFailures >= 3, JSON.stringify(staged));
    const id = staged.staged!.workflowId;
    const p = await st.waitProgress(id, (x) => x.waitingFor === 'old-primary-dead', 'the staged failover at old-primary-dead', 90_000);
    assert.match(p.steps.find((s) => s.name === 'plan')?.detail ?? '', /watch: no node answered as the primary in 3 probes 1 s apart/);
    // No second failover for the same outage, however long it lasts.
    await sleep(4000);
    const later = await status();
    assert.equal(later.staged?.workflowId, id);
    assert.equal((await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps.filter((s) => s.name === 'staged').length, 1);

    const a = await decide(st.client, id, { checkpoint: 'old-primary-dead', decision: 'approve', by: 'bob', comment: 'dc1 is off' });
    assert.ok(a.accepted, a.accepted ? '' : a.reason);
    const h = st.client.workflow.getHandle(id);
    for (let i = 0; i < 240 && (await h.describe()).status.name === 'RUNNING'; i++) {
      const q = await h.query<Progress>('progress');
      if (q.waitingFor === 'accept-data-loss') await decide(st.client, id, { checkpoint: 'accept-data-loss', decision: 'approve', by: 'bob' });
      await sleep(250);
    }
    const r = (await h.result()) as FailoverResult;
    assert.equal(r.outcome, 'completed', r.abortedBecause ?? '');
    const after = await statusUntil((x) => x.primary === 'dc2-db', 'dc2-db as the primary');
    assert.equal(after.consecutiveFailures, 0);
    assert.equal(after.staged, null, 'the outage is over');

    const stop = await cli(st, ['watch', 'stop', 'demo', '--as', 'alice']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(await st.client.workflow.getHandle(watchWorkflowId('demo')).result(), { stoppedBy: 'alice' });
  });

  it('continues as new, carrying what it saw', async () => {
    const h = await st.client.workflow.start('watch', {
      taskQueue: TASK_QUEUE,
      workflowId: watchWorkflowId('demo'),
      args: [{ cluster: 'demo', everySeconds: 1, failures: 3, ticksPerRun: 2, requestedBy: 'alice' }],
    });
    const s = await statusUntil((x) => x.ticks >= 5, 'five probes');
    assert.equal(s.primary, 'dc2-db');
    const d = await st.client.workflow.getHandle(watchWorkflowId('demo')).describe();
    assert.notEqual(d.runId, h.firstExecutionRunId, 'a later run of the same watch');
    await st.client.workflow.getHandle(watchWorkflowId('demo')).signal('stop', { by: 'alice' });
    assert.deepEqual(await st.client.workflow.getHandle(watchWorkflowId('demo')).result(), { stoppedBy: 'alice' });
  });
});
