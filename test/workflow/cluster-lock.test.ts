/**
 * The per-cluster operation lock on a real Temporal dev server, with the real lock activities and
 * a real client: one mutating run per cluster whatever its workflow id; other clusters are not
 * blocked; the lock passes on when the holder finishes, is cancelled or is terminated; a retried
 * acquire by the holder is granted; the holder survives the lock workflow's continue-as-new and
 * an idle lock workflow ends and is started again by the next acquire.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ActivityFailure, ApplicationFailure, CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { loadTopology } from '../../src/topology/load';
import { holderQuery, lockWorkflowId, type LockHolder } from '../../src/workflows/cluster-lock';
import type { Progress } from '../../src/workflows/messages';
import { startTestTemporal } from '../support/temporal';
import type { acquireTwice, clusterLock, HolderInput, lockHolder } from './fixtures/lock-workflows';

const topology = loadTopology(join(__dirname, '../../examples/switchyard.yaml'));

describe('cluster lock (real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-lock-${randomUUID()}`;

  before(async () => {
    [env, bundle] = await Promise.all([
      startTestTemporal(),
      bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/lock-workflows'), logger: new DefaultLogger('WARN') }),
    ]);
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: createActivities({ topology: () => topology, temporal: () => env.client }),
    });
    running = worker.run();
  });
  after(async () => {
    if (worker) {
      worker.shutdown();
      await running;
    }
    await env?.teardown();
  });

  const newCluster = () => `c${randomUUID().slice(0, 8)}`;

  function startHolder(input: HolderInput, workflowId = `typed-by-hand-${randomUUID()}`): Promise<WorkflowHandle<typeof lockHolder>> {
    return env.client.workflow.start<typeof lockHolder>('lockHolder', { taskQueue, workflowId, args: [input] });
  }

  async function holderOf(cluster: string): Promise<LockHolder | null> {
    try {
      return await env.client.workflow.getHandle(lockWorkflowId(cluster)).query(holderQuery);
    } catch {
      return null; // no lock workflow yet, or it has ended: nothing held
    }
  }

  async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (ok(v)) return v;
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
      await sleep(100);
    }
  }

  const heldBy = (cluster: string, h: WorkflowHandle) => until(`${h.workflowId} to hold ${cluster}`, () => holderOf(cluster), (x) => x?.workflowId === h.workflowId);

  function rootCause(err: unknown): unknown {
    let e = err;
    while (e instanceof Error && e.cause) e = e.cause;
    return e;
  }

  it('a second run with another workflow id is refused with ClusterBusy naming the first', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'failover', requestedBy: 'alice' });
    await heldBy(cluster, a);
    const b = await startHolder({ cluster, operation: 'switchover', requestedBy: 'bob' });
    const err = await b.result().then(() => null, (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.ok(err.cause instanceof ActivityFailure);
    const cause = rootCause(err);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, 'ClusterBusy');
    assert.equal(cause.nonRetryable, true);
    assert.match(cause.message, new RegExp(`^cluster ${cluster} is busy: failover ${a.workflowId} \\(started by alice at \\d{4}-\\d\\d-\\d\\dT[^)]+\\) is running; wait for it or cancel it$`));
    const progress = await b.query<Progress>('progress');
    assert.deepEqual(progress.steps.map((s) => [s.name, s.state]), [['lock', 'failed']]); // no unlock: it never held
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId);
    await a.signal('finish');
    assert.equal(await a.result(), 'failover done');
  });

  it('a run on another cluster is not blocked', async () => {
    const [one, two] = [newCluster(), newCluster()];
    const a = await startHolder({ cluster: one, operation: 'failover' });
    await heldBy(one, a);
    const b = await startHolder({ cluster: two, operation: 'failover' });
    await heldBy(two, b);
    assert.equal((await holderOf(one))?.workflowId, a.workflowId);
    await Promise.all([a.signal('finish'), b.signal('finish')]);
    assert.deepEqual(await Promise.all([a.result(), b.result()]), ['failover done', 'failover done']);
  });

  it('after the holder finishes, the next run takes the lock', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    await a.signal('finish');
    await a.result();
    assert.equal(await holderOf(cluster), null);
    const progress = await a.query<Progress>('progress');
    assert.deepEqual(progress.steps.map((s) => [s.name, s.state]), [['lock', 'done'], ['work', 'done'], ['unlock', 'done']]);
    const b = await startHolder({ cluster, operation: 'failback' });
    const held = await heldBy(cluster, b);
    assert.equal(held?.operation, 'failback');
    await b.signal('finish');
    await b.result();
  });

  it('a terminated holder does not block: the next acquire force-releases it and takes the lock', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'restore' });
    await heldBy(cluster, a);
    await a.terminate('operator gave up');
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId); // terminate runs no finally
    const b = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, b);
    const lock = (await b.query<Progress>('progress')).steps.find((s) => s.name === 'lock');
    assert.equal(lock?.state, 'done');
    assert.match(lock?.detail ?? '', new RegExp(`released the stale lock of restore ${a.workflowId}`));
    await b.signal('finish');
    await b.result();
  });

  it('an acquire retried by the same run is granted again', async () => {
    const cluster = newCluster();
    const res = await env.client.workflow.execute<typeof acquireTwice>('acquireTwice', { taskQueue, workflowId: `twice-${randomUUID()}`, args: [{ cluster }] });
    assert.deepEqual(res, { first: true, second: true, sameSince: true });
    assert.equal(await holderOf(cluster), null);
  });

  it('a cancelled holder releases the lock', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'rejoin' });
    await heldBy(cluster, a);
    await a.cancel();
    const err = await a.result().then(() => null, (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    assert.equal(await holderOf(cluster), null);
    const unlock = (await a.query<Progress>('progress')).steps.find((s) => s.name === 'unlock');
    assert.deepEqual([unlock?.state, unlock?.detail], ['done', `cluster ${cluster} released`]);
  });

  it('the holder survives the lock workflow continuing as new', async () => {
    const cluster = newCluster();
    const lock = await env.client.workflow.start<typeof clusterLock>('clusterLock', { taskQueue, workflowId: lockWorkflowId(cluster), args: [{ cluster, maxRequestsPerRun: 2 }] });
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    const b = await startHolder({ cluster, operation: 'switchover' }); // refused: the second request
    await assert.rejects(b.result(), WorkflowFailedError);
    const next = await until('continue-as-new', () => env.client.workflow.getHandle(lockWorkflowId(cluster)).describe(), (d) => d.runId !== lock.firstExecutionRunId);
    assert.equal(next.status.name, 'RUNNING');
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId);
    await a.signal('finish');
    await a.result();
    assert.equal(await holderOf(cluster), null);
  });

  it('a free lock workflow ends when idle, and the next acquire starts it again', async () => {
    const cluster = newCluster();
    const lock = await env.client.workflow.start<typeof clusterLock>('clusterLock', { taskQueue, workflowId: lockWorkflowId(cluster), args: [{ cluster, idleSeconds: 1 }] });
    await lock.result(); // nobody came within a second
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    const d = await env.client.workflow.getHandle(lockWorkflowId(cluster)).describe();
    assert.notEqual(d.runId, lock.firstExecutionRunId);
    await a.signal('finish');
    await a.result();
  });
});
