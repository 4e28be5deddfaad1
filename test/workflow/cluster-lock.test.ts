/**
 * The per-cluster operation lock on a real Temporal dev server, with the real lock activities and
 * a real client: one mutating run per cluster whatever its workflow id; other clusters are not
 * blocked; the lock passes on when the holder finishes, is cancelled or is terminated; a retried
 * acquire by the holder is granted; the holder survives the lock workflow's continue-as-new and
 * an idle lock workflow ends and is started again by the next acquire.
 *
 * Resets and terminations (issue 11, item 5), with the real `temporal workflow reset` CLI: a run
 * reset past (or before) its lock step is still the holder, a second run is refused naming it and
 * the reset run's unlock frees the lock; the real failover reset past its lock step refuses a real
 * switchover (the other activities faked: the failover waits at its preflight); a terminated lock
 * workflow keeps a holder that still runs; a child claiming its parent's lock is refused unless
 * the parent (or an ancestor) holds it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  WorkflowFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { loadTopology } from '../../src/topology/load';
import { holderQuery, lockWorkflowId, releaseUpdate, type LockHolder } from '../../src/contract/cluster-lock';
import type { Progress } from '../../src/contract/messages';
import { startTestTemporal, toolPaths } from '../support/temporal';
import type { acquireTwice, clusterLock, HolderInput, LockParentInput, lockHolder, lockParent } from './fixtures/lock-workflows';

const run = promisify(execFile);
const topology = loadTopology(join(__dirname, '../../examples/switchyard.yaml'));

/**
 * The failover's preflight (pgStatus) waits here until the test opens the gate of its cluster,
 * then fails with a ConfigError: the run holds the lock and stands still meanwhile. Nothing else
 * in these tests reads a node.
 */
const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
function gate(cluster: string): () => void {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  gates.set(cluster, { open, opened });
  return open;
}

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
      activities: {
        ...createActivities({ topology: () => topology, temporal: () => env.client }),
        async pgStatus(input: { cluster: string; node: string }): Promise<never> {
          await Promise.race([gates.get(input.cluster)?.opened, sleep(40_000)]);
          throw ApplicationFailure.nonRetryable(`test: the preflight of ${input.cluster} read ${input.node} and stops the run here`, 'ConfigError');
        },
        async notify(): Promise<void> {},
      },
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
  /** A cluster the real runbooks can be started on: the example's "shop" under a new name. */
  const newRunbookCluster = () => {
    const name = newCluster();
    (topology.clusters as Record<string, unknown>)[name] = topology.clusters.shop;
    return name;
  };

  /** `temporal workflow reset` of the workflow's current run, as an operator types it; resolves to the new run. */
  async function reset(workflowId: string, type: 'LastWorkflowTask' | 'FirstWorkflowTask'): Promise<string> {
    const before = (await env.client.workflow.getHandle(workflowId).describe()).runId;
    await run(toolPaths().temporal, [
      'workflow',
      'reset',
      '--address',
      env.address,
      '--workflow-id',
      workflowId,
      '--type',
      type,
      '--reason',
      'test: reset by an operator',
      '--yes',
    ]);
    const d = await until(
      `the reset run of ${workflowId}`,
      () => env.client.workflow.getHandle(workflowId).describe(),
      (x) => x.runId !== before && x.status.name === 'RUNNING',
    );
    assert.equal((await env.client.workflow.getHandle(workflowId, before).describe()).status.name, 'TERMINATED', 'the reset ended the run it replaced');
    return d.runId;
  }

  /** The latest run of a workflow id (a reset run, say). */
  const latest = (workflowId: string) => env.client.workflow.getHandle(workflowId);

  async function failureCause(result: Promise<unknown>): Promise<ApplicationFailure> {
    const err = await result.then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, `expected the run to fail, got ${String(err)}`);
    const cause = rootCause(err);
    assert.ok(cause instanceof ApplicationFailure, String(cause));
    return cause;
  }

  /** The run's refusal, once it is refused; fails at once (instead of waiting on the run) if it was granted the lock. */
  async function refusal(cluster: string, h: WorkflowHandle): Promise<ApplicationFailure> {
    const seen = await until(
      `${h.workflowId} to be refused`,
      async () => ({ status: (await h.describe()).status.name, holder: (await holderOf(cluster))?.workflowId }),
      (x) => x.status !== 'RUNNING' || x.holder === h.workflowId,
    );
    assert.notEqual(seen.holder, h.workflowId, `${h.workflowId} was granted the lock of ${cluster}`);
    return failureCause(h.result());
  }

  const stepsOf = async (h: WorkflowHandle) => (await h.query<Progress>('progress')).steps.map((x) => [x.name, x.state, x.detail]);

  function startHolder(input: HolderInput, workflowId = `typed-by-hand-${randomUUID()}`): Promise<WorkflowHandleWithFirstExecutionRunId<typeof lockHolder>> {
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

  const heldBy = (cluster: string, h: WorkflowHandle) =>
    until(
      `${h.workflowId} to hold ${cluster}`,
      () => holderOf(cluster),
      (x) => x?.workflowId === h.workflowId,
    );

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
    const err = await b.result().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.ok(err.cause instanceof ActivityFailure);
    const cause = rootCause(err);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, 'ClusterBusy');
    assert.equal(cause.nonRetryable, true);
    assert.match(
      cause.message,
      new RegExp(
        `^cluster ${cluster} is busy: failover ${a.workflowId} \\(started by alice at \\d{4}-\\d\\d-\\d\\dT[^)]+\\) is running; wait for it or cancel it$`,
      ),
    );
    const progress = await b.query<Progress>('progress');
    assert.deepEqual(
      progress.steps.map((s) => [s.name, s.state]),
      [['lock', 'failed']],
    ); // no unlock: it never held
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
    assert.deepEqual(
      progress.steps.map((s) => [s.name, s.state]),
      [
        ['lock', 'done'],
        ['work', 'done'],
        ['unlock', 'done'],
      ],
    );
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
    const err = await a.result().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    assert.equal(await holderOf(cluster), null);
    const unlock = (await a.query<Progress>('progress')).steps.find((s) => s.name === 'unlock');
    assert.deepEqual([unlock?.state, unlock?.detail], ['done', `cluster ${cluster} released`]);
  });

  it('the holder survives the lock workflow continuing as new', async () => {
    const cluster = newCluster();
    const lock = await env.client.workflow.start<typeof clusterLock>('clusterLock', {
      taskQueue,
      workflowId: lockWorkflowId(cluster),
      args: [{ cluster, maxRequestsPerRun: 2 }],
    });
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    const b = await startHolder({ cluster, operation: 'switchover' }); // refused: the second request
    await assert.rejects(b.result(), WorkflowFailedError);
    const next = await until(
      'continue-as-new',
      () => env.client.workflow.getHandle(lockWorkflowId(cluster)).describe(),
      (d) => d.runId !== lock.firstExecutionRunId,
    );
    assert.equal(next.status.name, 'RUNNING');
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId);
    await a.signal('finish');
    await a.result();
    assert.equal(await holderOf(cluster), null);
  });

  it('a free lock workflow ends when idle, and the next acquire starts it again', async () => {
    const cluster = newCluster();
    const lock = await env.client.workflow.start<typeof clusterLock>('clusterLock', {
      taskQueue,
      workflowId: lockWorkflowId(cluster),
      args: [{ cluster, idleSeconds: 1 }],
    });
    await lock.result(); // nobody came within a second
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    const d = await env.client.workflow.getHandle(lockWorkflowId(cluster)).describe();
    assert.notEqual(d.runId, lock.firstExecutionRunId);
    await a.signal('finish');
    await a.result();
  });
  it('a run reset past its lock step is still the holder: a second run is refused naming it, and the reset run releases', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'failover', requestedBy: 'alice' });
    const held = await heldBy(cluster, a);
    assert.equal(held?.firstExecutionRunId, a.firstExecutionRunId);
    const resetRun = await reset(a.workflowId, 'LastWorkflowTask');
    const b = await startHolder({ cluster, operation: 'switchover', requestedBy: 'bob' });
    const cause = await refusal(cluster, b);
    assert.equal(cause.type, 'ClusterBusy');
    assert.match(cause.message, new RegExp(`^cluster ${cluster} is busy: failover ${a.workflowId} \\(started by alice at [^)]+\\) is running`));
    const now = await holderOf(cluster);
    assert.deepEqual(
      [now?.workflowId, now?.firstExecutionRunId, now?.since],
      [a.workflowId, a.firstExecutionRunId, held?.since],
      'not force-released: the same holder',
    );
    await latest(a.workflowId).signal('finish');
    assert.equal(await latest(a.workflowId).result(), 'failover done');
    assert.equal((await latest(a.workflowId).describe()).runId, resetRun);
    const unlock = (await stepsOf(latest(a.workflowId))).find(([name]) => name === 'unlock');
    assert.deepEqual(unlock, ['unlock', 'done', `cluster ${cluster} released`], 'the reset run released the lock it took before the reset');
    assert.equal(await holderOf(cluster), null);
  });

  it('a run reset before its lock step takes the lock again as the same holder', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'restore', requestedBy: 'alice' });
    const held = await heldBy(cluster, a);
    const resetRun = await reset(a.workflowId, 'FirstWorkflowTask');
    const again = await until(
      'the reset run to take the lock',
      () => holderOf(cluster),
      (h) => h?.runId === resetRun,
    );
    assert.deepEqual([again?.workflowId, again?.firstExecutionRunId, again?.since], [a.workflowId, a.firstExecutionRunId, held?.since]);
    // The lock names the reset run as soon as it grants; the run records its step in its next workflow task.
    const lock = await until(
      "the reset run's lock step to end",
      async () => (await stepsOf(latest(a.workflowId))).filter(([name]) => name === 'lock'),
      (l) => l.length > 0 && l.every(([, state]) => state !== 'running'),
    );
    assert.deepEqual(lock, [['lock', 'done', `cluster ${cluster} locked for restore`]], 'granted, nothing force-released');
    await latest(a.workflowId).signal('finish');
    await latest(a.workflowId).result();
    assert.equal(await holderOf(cluster), null);
  });

  it('a failover reset with `temporal workflow reset` past its lock step: a switchover started meanwhile is refused naming it', async () => {
    const cluster = newRunbookCluster();
    const open = gate(cluster);
    const f = await env.client.workflow.start('failover', {
      taskQueue,
      workflowId: `failover-by-hand-${randomUUID()}`,
      args: [{ cluster, requestedBy: 'alice' }],
    });
    await heldBy(cluster, f);
    const atPreflight = (p: Progress) => p.steps.some((x) => x.name.startsWith('preflight:') && x.state === 'running');
    await until('the failover at its preflight', () => f.query<Progress>('progress'), atPreflight);
    await reset(f.workflowId, 'LastWorkflowTask');
    await until('the reset failover at its preflight', () => latest(f.workflowId).query<Progress>('progress'), atPreflight);

    const sw = await env.client.workflow.start('switchover', {
      taskQueue,
      workflowId: `switchover-by-hand-${randomUUID()}`,
      args: [{ cluster, to: 'eu2', requestedBy: 'bob' }],
    });
    const cause = await refusal(cluster, sw);
    assert.equal(cause.type, 'ClusterBusy');
    assert.match(
      cause.message,
      new RegExp(`^cluster ${cluster} is busy: failover ${f.workflowId} \\(started by alice at [^)]+\\) is running; wait for it or cancel it$`),
    );
    assert.deepEqual(
      (await sw.query<Progress>('progress')).steps.map((x) => [x.name, x.state]),
      [
        ['layout', 'done'],
        ['lock', 'failed'],
      ],
      'the switchover did nothing',
    );
    assert.equal((await holderOf(cluster))?.workflowId, f.workflowId);

    open(); // the reset failover's preflight fails: it stops and releases
    await assert.rejects(latest(f.workflowId).result(), WorkflowFailedError);
    const unlock = (await stepsOf(latest(f.workflowId))).find(([name]) => name === 'unlock');
    assert.deepEqual(unlock, ['unlock', 'done', `cluster ${cluster} released`]);
    assert.equal(await holderOf(cluster), null);
  });

  it('a terminated lock workflow does not drop a live holder: the next acquire is refused naming it', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'failover', requestedBy: 'alice' });
    await heldBy(cluster, a);
    const lock = env.client.workflow.getHandle(lockWorkflowId(cluster));
    const terminated = (await lock.describe()).runId;
    await lock.terminate('an operator cleaning up workflows');
    const b = await startHolder({ cluster, operation: 'switchover', requestedBy: 'bob' });
    const cause = await refusal(cluster, b);
    assert.equal(cause.type, 'ClusterBusy');
    assert.match(cause.message, new RegExp(`^cluster ${cluster} is busy: failover ${a.workflowId} \\(started by alice`));
    const d = await lock.describe();
    assert.deepEqual([d.status.name, d.runId !== terminated], ['RUNNING', true], 'a new lock workflow, started carrying the holder');
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId);
    await a.signal('finish');
    await a.result();
    assert.equal(await holderOf(cluster), null);
  });

  it('a lock workflow terminated while held: the holder still releases it; the holder of a lock terminated with it is not carried', async () => {
    const cluster = newCluster();
    const a = await startHolder({ cluster, operation: 'failover' });
    await heldBy(cluster, a);
    await env.client.workflow.getHandle(lockWorkflowId(cluster)).terminate('an operator cleaning up workflows');
    await a.signal('finish');
    await a.result();
    assert.deepEqual(
      (await stepsOf(a)).find(([name]) => name === 'unlock'),
      ['unlock', 'done', `cluster ${cluster} released`],
    );
    assert.equal(await holderOf(cluster), null);

    const c = await startHolder({ cluster, operation: 'rejoin' });
    await heldBy(cluster, c);
    await c.terminate('gave up');
    await env.client.workflow.getHandle(lockWorkflowId(cluster)).terminate('an operator cleaning up workflows');
    const d = await startHolder({ cluster, operation: 'switchover' });
    await heldBy(cluster, d);
    // The lock workflow names d as its holder a moment before d's own step log records the grant.
    for (const t0 = Date.now(); (await stepsOf(d)).find(([name]) => name === 'lock')?.[1] === 'running' && Date.now() - t0 < 10_000;)
      await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      (await stepsOf(d)).find(([name]) => name === 'lock'),
      ['lock', 'done', `cluster ${cluster} locked for switchover`],
      'the ended holder was not carried over',
    );
    await d.signal('finish');
    await d.result();
  });

  function startParent(input: LockParentInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof lockParent>> {
    return env.client.workflow.start<typeof lockParent>('lockParent', { taskQueue, workflowId: `parent-${randomUUID()}`, args: [input] });
  }

  it("a child claiming to run under its parent's lock is refused when the parent does not hold it, naming the holder (or none)", async () => {
    const cluster = newCluster();
    const p1 = await startParent({ cluster, takeLock: false, depth: 1 });
    const none = await failureCause(p1.result());
    assert.equal(none.type, 'LockNotHeld');
    assert.equal(
      none.message,
      `rejoin ${p1.workflowId}-child was started as a child of ${p1.workflowId} to run under its lock of cluster ${cluster}, but nobody holds that lock: refused. Start rejoin on its own (\`switchyard rejoin ${cluster} …\`), which takes the lock itself`,
    );

    const a = await startHolder({ cluster, operation: 'failover', requestedBy: 'alice' });
    await heldBy(cluster, a);
    const p2 = await startParent({ cluster, takeLock: false, depth: 1 });
    const other = await refusal(cluster, p2);
    assert.equal(other.type, 'ClusterBusy');
    assert.match(
      other.message,
      new RegExp(
        `but the lock is held by failover ${a.workflowId} \\(started by alice at [^)]+\\), not by ${p2.workflowId}: refused\\. Wait for ${a.workflowId} to finish`,
      ),
    );
    assert.deepEqual(
      (await stepsOf(env.client.workflow.getHandle(`${p2.workflowId}-child`))).map(([name, state]) => [name, state]),
      [['lock', 'failed']],
      'the child did nothing',
    );
    assert.equal((await holderOf(cluster))?.workflowId, a.workflowId, 'the holder is untouched');
    await a.signal('finish');
    await a.result();
  });

  it('a child and a grandchild under a parent that holds the lock run, also after the parent was reset', async () => {
    const cluster = newCluster();
    const p = await startParent({ cluster, takeLock: true, depth: 2, waitForGo: true });
    await heldBy(cluster, p);
    await reset(p.workflowId, 'LastWorkflowTask');
    await latest(p.workflowId).signal('go');
    assert.equal(await latest(p.workflowId).result(), 'rejoin ran under the lock');
    const child = (await stepsOf(env.client.workflow.getHandle(`${p.workflowId}-child`))).find(([name]) => name === 'lock');
    assert.deepEqual(child, ['lock', 'done', `cluster ${cluster} is locked by the parent run ${p.workflowId} (failback)`]);
    const grandchild = (await stepsOf(env.client.workflow.getHandle(`${p.workflowId}-child-child`))).find(([name]) => name === 'lock');
    assert.deepEqual(grandchild, ['lock', 'done', `cluster ${cluster} is locked by an ancestor run ${p.workflowId} (failback)`]);
    assert.equal(await holderOf(cluster), null);
  });
  it('a holder recorded before first execution run ids (carried over continue-as-new) is still judged by its chain', async () => {
    const cluster = newCluster();
    // A run that holds the lock the old way: named by workflow id and run id only.
    const old = await startParent({ cluster, takeLock: false, depth: 1, waitForGo: true });
    const legacy: LockHolder = {
      workflowId: old.workflowId,
      runId: old.firstExecutionRunId,
      operation: 'failover',
      requestedBy: 'alice',
      since: new Date().toISOString(),
    };
    await env.client.workflow.start<typeof clusterLock>('clusterLock', { taskQueue, workflowId: lockWorkflowId(cluster), args: [{ cluster, holder: legacy }] });
    const resetRun = await reset(old.workflowId, 'LastWorkflowTask');
    const b = await startHolder({ cluster, operation: 'switchover', requestedBy: 'bob' });
    assert.match(
      (await refusal(cluster, b)).message,
      new RegExp(`^cluster ${cluster} is busy: failover ${old.workflowId} \\(started by alice`),
      'its reset run still runs: not force-released',
    );
    const released = await env.client.workflow
      .getHandle(lockWorkflowId(cluster))
      .executeUpdate(releaseUpdate, { args: [{ workflowId: old.workflowId, runId: resetRun, firstExecutionRunId: old.firstExecutionRunId }] });
    assert.deepEqual(released, { released: true, holder: null }, 'the reset run releases the holder recorded the old way');
    await latest(old.workflowId).terminate('done with it');
  });
});
