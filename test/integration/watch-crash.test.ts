/**
 * The watch survives what kills its hosts: the worker SIGKILLed while the watch counts failed
 * probes of a dead dc1, and the Temporal server restarted once the failover is staged. Its state
 * comes back from history each time, and it never stages a second failover for the outage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPart, stopPart } from '../../sandbox';
import type { Progress } from '../../src/contract/messages';
import { watchWorkflowId } from '../../src/contract/watch';
import { TASK_QUEUE } from '../../src/temporal-target';
import { sleep } from '../support/runs';
import { startStage, type Stage } from '../support/stage';
import { watchUntil } from '../support/watch';
import { startWorkerProcess, stopWorkerProcesses, type WorkerProcess } from '../support/worker';

describe('watch: a worker SIGKILL and a Temporal restart stage no second failover', () => {
  let st: Stage;
  const worker = async (): Promise<WorkerProcess> => {
    const w = startWorkerProcess({ configPath: st.configPath, address: st.sb.status.temporal.address });
    await w.waitFor((l) => l.msg === 'worker started', 90_000);
    return w;
  };
  before(async () => {
    st = await startStage({ worker: false });
  });
  after(async () => {
    await stopWorkerProcesses();
    await st?.down();
  });

  it('one staged failover, however the watch was interrupted', async () => {
    let w = await worker();
    await st.client.workflow.start('watch', {
      taskQueue: TASK_QUEUE,
      workflowId: watchWorkflowId('demo'),
      args: [{ cluster: 'demo', everySeconds: 1, failures: 3, requestedBy: 'alice' }],
    });
    await watchUntil(st, (x) => x.primary === 'dc1-db' && x.ticks >= 2, 'dc1-db as the primary');
    await stopPart(st.sb.opts, 'dc1', 'kill');
    // Killed in the middle of counting.
    await watchUntil(st, (x) => x.confirmedFailures >= 1, 'a first failed probe');
    await w.kill('SIGKILL');
    await sleep(2000);
    w = await worker();
    const staged = await watchUntil(st, (x) => x.staged !== null, 'a staged failover', 120_000);
    const id = staged.staged!.workflowId;
    await st.waitProgress(id, (p) => p.waitingFor === 'old-primary-dead', 'the staged failover at old-primary-dead', 90_000);

    // Temporal itself restarted while the watch goes on seeing the outage.
    await stopPart(st.sb.opts, 'temporal');
    await sleep(1000);
    await startPart(st.sb.opts, 'temporal');
    const ticks = (await watchUntil(st, () => true, 'an answer after the restart', 120_000)).ticks;
    const later = await watchUntil(st, (x) => x.ticks >= ticks + 5, 'five more probes', 120_000);
    assert.equal(later.staged?.workflowId, id);
    assert.equal(later.verdict, 'staged');
    const failovers: string[] = [];
    for await (const f of st.client.workflow.list({ query: `WorkflowType = 'failover'` })) failovers.push(f.workflowId);
    assert.deepEqual(failovers, [id], 'exactly one failover was ever started');
    const steps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
    assert.equal(steps.filter((s) => s.name === 'staged').length, 1, JSON.stringify(steps));
    // Later probes still see the outage, and say why nothing more is staged.
    assert.ok(
      steps.some((s) => s.name === 'not-staged' && s.detail?.includes(`failover ${id} was staged for this outage`)),
      JSON.stringify(steps.map((s) => s.name)),
    );
    // The staged run survived both as well: it still waits for a person.
    assert.equal((await st.client.workflow.getHandle(id).query<Progress>('progress')).waitingFor, 'old-primary-dead');
    await st.client.workflow.getHandle(id).terminate('test done');
    await st.client.workflow.getHandle(watchWorkflowId('demo')).signal('stop', { by: 'alice' });
    await st.client.workflow.getHandle(watchWorkflowId('demo')).result();
    await w.stop();
  });
});
