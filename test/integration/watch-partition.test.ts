/**
 * A partition between the worker and dc1 alone: the worker's packets to dc1's hosts are dropped
 * (sandbox partitionFromWorker), while dc2's vantage host still reaches dc1's PostgreSQL. The
 * watch must not take that for a dead dc1: no failover is staged, however long it lasts, and a
 * person is warned once; when the partition heals the warning ends, with its start and end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { healPartition, partitionFromWorker, partitionUnsupported } from '../../sandbox';
import type { Progress } from '../../src/contract/messages';
import { watchWorkflowId } from '../../src/contract/watch';
import { TASK_QUEUE } from '../../src/temporal-target';
import { sleep } from '../support/runs';
import type { Stage } from '../support/stage';
import { watchUntil } from '../support/watch';
import { stageNotifying, type Webhook } from '../support/webhook';

const unsupported = partitionUnsupported();

describe('watch: dc1 cut off from the worker only is a partition, not an outage', { skip: unsupported ?? false }, () => {
  let st: Stage;
  let hook: Webhook;
  before(async () => {
    ({ st, hook } = await stageNotifying());
  });
  after(async () => {
    if (st) healPartition(st.sb.opts);
    await st?.down();
    await hook?.close();
  });

  it('stages no failover, warns once, and the warning ends when the partition heals', async () => {
    await st.client.workflow.start('watch', {
      taskQueue: TASK_QUEUE,
      workflowId: watchWorkflowId('demo'),
      args: [{ cluster: 'demo', everySeconds: 1, failures: 2, requestedBy: 'alice' }],
    });
    await watchUntil(st, (x) => x.primary === 'dc1-db' && x.verdict === 'ok', 'dc1-db as the primary, all well');
    const cut = partitionFromWorker(st.sb.opts, 'dc1');
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
    // Well past the two failures that would stage a failover for a dead dc1: none is.
    await sleep(8000);
    const during = await watchUntil(st, (x) => x.verdict === 'partition', 'the partition still');
    assert.equal(during.staged, null);
    assert.equal(during.confirmedFailures, 0);
    assert.ok(during.consecutiveFailures >= 2, JSON.stringify(during));
    const failovers: string[] = [];
    for await (const w of st.client.workflow.list({ query: `WorkflowType = 'failover'` })) failovers.push(w.workflowId);
    assert.deepEqual(failovers, [], 'no failover was started');
    assert.equal(hook.received.filter((n) => n.fields.incident === 'partition:dc1-db' && n.event === 'watch.warning').length, 1, 'warned once');

    healPartition(st.sb.opts);
    await watchUntil(st, (x) => x.primary === 'dc1-db' && x.consecutiveFailures === 0, 'dc1-db answering the worker again', 120_000);
    const ended = await hook.waitFor((n) => n.event === 'watch.warning-ended' && n.fields.incident === 'partition:dc1-db', 'the end of the partition warning');
    assert.equal(ended.fields.since, warned.fields.since);
    assert.ok(Date.parse(String(ended.fields.until)) > Date.parse(String(ended.fields.since)), JSON.stringify(ended.fields));
    const steps = (await st.client.workflow.getHandle(watchWorkflowId('demo')).query<Progress>('progress')).steps;
    assert.ok(!steps.some((s) => s.name === 'staged'), 'nothing staged');
    await st.client.workflow.getHandle(watchWorkflowId('demo')).signal('stop', { by: 'alice' });
    await st.client.workflow.getHandle(watchWorkflowId('demo')).result();
  });
});
