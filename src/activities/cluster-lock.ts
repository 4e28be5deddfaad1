/**
 * The per-cluster operation lock, client side: a runbook run takes the lock of its cluster from
 * the lock workflow `switchyard-lock-<cluster>` (src/workflows/cluster-lock.ts) with
 * Update-With-Start, so the lock workflow is started if it is not running. A refusal names the
 * run in the way.
 *
 * The holder is its workflow id and execution chain (the chain's first run id, which a reset run
 * and a continued-as-new run keep), and whether it still runs is judged on the LATEST run of that
 * workflow id: a holder whose chain still runs (a reset run of it, say) is never force-released; a
 * holder whose chain has ended (terminated, timed out, failed without releasing) is force-released
 * and the acquire tried once more.
 *
 * A lock workflow that is not running (terminated, failed) does not drop its holder: the acquire
 * reads the last run's holder (a query on a closed workflow replays its history) and, when that
 * holder's chain still runs, starts the new lock workflow carrying it. A child run that claims to
 * run under its parent's lock (failback's rejoin and switchover) is checked with lockCheckParent:
 * the holder must be its parent, or an ancestor, by chain, and still running.
 */
import { WithStartWorkflowOperation, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  acquireUpdate,
  chainOf,
  forceReleaseUpdate,
  holderQuery,
  lockWorkflowId,
  releaseUpdate,
  sameHolder,
  type AcquireResult,
  type ClusterLockInput,
  type ClusterLockWorkflow,
  type LockHolder,
  type ReleaseResult,
} from '../contract/cluster-lock';

import type { Runtime } from './runtime';
import { currentTaskQueue, temporalClient } from './temporal-client';
import { Errors } from '../contract/errors';

export interface LockAcquireInput {
  cluster: string;
  workflowId: string;
  runId: string;
  /** workflowInfo().firstExecutionRunId; read from the run's description when absent. */
  firstExecutionRunId?: string;
  operation: string;
  requestedBy?: string;
}

export interface LockAcquireResult {
  holder: LockHolder;
  /** The stale holder this acquire force-released first, if any. */
  forceReleased: LockHolder | null;
  /** The holder of a lock workflow found closed, carried into the new one (it still runs). */
  carried?: LockHolder | null;
}

export interface LockReleaseInput {
  cluster: string;
  workflowId: string;
  runId: string;
  firstExecutionRunId?: string;
}

export interface LockCheckParentInput {
  cluster: string;
  /** The child run that claims to run under its parent's lock, and what it is. */
  workflowId: string;
  operation: string;
  /** workflowInfo().parent of the child. */
  parent: { workflowId: string; runId: string };
}

export interface LockCheckParentResult {
  holder: LockHolder;
  /** The workflow id of the ancestor that holds the lock (the parent, or the parent's parent…). */
  heldBy: string;
}

/** How far up a chain of child runs the holder is looked for (failback → switchover → rejoin is 2). */
const MAX_ANCESTORS = 5;

function describeHolder(h: LockHolder): string {
  return `${h.operation} ${h.workflowId} (started ${h.requestedBy ? `by ${h.requestedBy} ` : ''}at ${h.since})`;
}

export function busyMessage(cluster: string, h: LockHolder): string {
  return `cluster ${cluster} is busy: ${describeHolder(h)} is running; wait for it or cancel it`;
}

async function describeOrNull(client: Client, workflowId: string, runId?: string) {
  try {
    return await client.workflow.getHandle(workflowId, runId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** The first run id of a run's chain, from its description; the run id itself when unknown. */
async function firstRunIdOf(client: Client, workflowId: string, runId: string): Promise<string> {
  const d = await describeOrNull(client, workflowId, runId);
  return d?.raw.workflowExecutionInfo?.firstRunId || runId;
}

export interface ChainState {
  running: boolean;
  /** For the log and messages: e.g. "TERMINATED", "RUNNING as run <id> (a reset run)". */
  status: string;
}

/**
 * Does the holder's execution chain still run? Judged on the latest run of its workflow id (a
 * reset or continued-as-new run has a new run id but the chain's first run id), never on the run
 * that took the lock (a reset leaves that one TERMINATED while the chain goes on).
 */
export async function holderChainState(client: Client, h: LockHolder): Promise<ChainState> {
  const latest = await describeOrNull(client, h.workflowId);
  if (!latest) return { running: false, status: 'gone from the server' };
  const latestFirst = latest.raw.workflowExecutionInfo?.firstRunId || '';
  // A holder recorded before firstExecutionRunId: its chain began where its run's chain began.
  const chain = h.firstExecutionRunId || (await firstRunIdOf(client, h.workflowId, h.runId));
  const sameChain = latestFirst ? latestFirst === chain : latest.runId === h.runId;
  const status = latest.status.name;
  if (!sameChain) {
    // Another execution of that workflow id came later: the holder's chain has ended. (Without a
    // first run id from the server the chains cannot be compared: a running one counts as the holder.)
    if (!latestFirst && status === 'RUNNING') return { running: true, status: `RUNNING as run ${latest.runId}` };
    return { running: false, status: `ended (the workflow id now belongs to run ${latest.runId}, ${status})` };
  }
  if (status !== 'RUNNING') return { running: false, status };
  return { running: true, status: latest.runId === h.runId ? 'RUNNING' : `RUNNING as run ${latest.runId} (a reset or continued run of ${h.runId})` };
}

export function lockActivities(rt: Runtime) {
  const client = (): Client => temporalClient(rt, 'take cluster locks');

  /**
   * The holder of the lock workflow's last run when that run is closed (terminated, failed, timed
   * out), read by a query (answered from its history); null when it runs or never existed. A query that cannot be
   * answered is an error: the lock is not assumed free.
   */
  async function closedLockHolder(c: Client, cluster: string): Promise<{ status: string; holder: LockHolder | null } | null> {
    const id = lockWorkflowId(cluster);
    const d = await describeOrNull(c, id);
    if (!d || d.status.name === 'RUNNING') return null;
    // It ends by itself only when free (idle), so a completed one held nothing: no query needed.
    if (d.status.name === 'COMPLETED') return { status: d.status.name, holder: null };
    try {
      return { status: d.status.name, holder: await c.workflow.getHandle(id, d.runId).query(holderQuery) };
    } catch (err) {
      throw ApplicationFailure.create({
        message:
          `the lock workflow ${id} of cluster ${cluster} is ${d.status.name} (run ${d.runId}) ` +
          `and its last holder could not be read (${(err as Error).message}); ` +
          `it is not taken as free. See it with \`temporal workflow query --workflow-id ${id} --run-id ${d.runId} --type holder\``,
        type: Errors.LockUnreadable,
      });
    }
  }

  /** What a new lock workflow is started with: the holder of a closed one, when that holder still runs. */
  async function carryOver(c: Client, cluster: string): Promise<LockHolder | null> {
    const closed = await closedLockHolder(c, cluster);
    if (!closed?.holder) return null;
    const state = await holderChainState(c, closed.holder);
    if (state.running) {
      rt.log.warn(
        `the lock workflow of cluster ${cluster} is ${closed.status} while ${closed.holder.workflowId} held it and still runs: ` +
          `starting it again with that holder`,
        { cluster, holder: closed.holder.workflowId },
      );
      return closed.holder;
    }
    rt.log.warn(`the lock workflow of cluster ${cluster} is ${closed.status}; its holder ${closed.holder.workflowId} is ${state.status}: starting it free`, {
      cluster,
      holder: closed.holder.workflowId,
    });
    return null;
  }

  function withStart(cluster: string, holder: LockHolder | null): WithStartWorkflowOperation<ClusterLockWorkflow> {
    const args: ClusterLockInput = holder ? { cluster, holder } : { cluster };
    return new WithStartWorkflowOperation<ClusterLockWorkflow>('clusterLock', {
      workflowId: lockWorkflowId(cluster),
      taskQueue: currentTaskQueue(),
      args: [args],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
  }

  async function tryAcquire(c: Client, input: LockAcquireInput & { firstExecutionRunId: string }, carried: LockHolder | null): Promise<AcquireResult> {
    const { cluster, workflowId, runId, firstExecutionRunId, operation, requestedBy } = input;
    return c.workflow.executeUpdateWithStart(acquireUpdate, {
      args: [{ workflowId, runId, firstExecutionRunId, operation, ...(requestedBy ? { requestedBy } : {}) }],
      startWorkflowOperation: withStart(cluster, carried),
    });
  }

  const busy = (cluster: string, h: LockHolder) =>
    ApplicationFailure.create({ message: busyMessage(cluster, h), type: Errors.ClusterBusy, nonRetryable: true, details: [h] });

  return {
    async lockAcquire(input: LockAcquireInput): Promise<LockAcquireResult> {
      const c = client();
      const req = { ...input, firstExecutionRunId: input.firstExecutionRunId || (await firstRunIdOf(c, input.workflowId, input.runId)) };
      const carried = await carryOver(c, input.cluster);
      let res = await tryAcquire(c, req, carried);
      let forceReleased: LockHolder | null = null;
      if (!res.granted && res.holder) {
        const stale = res.holder;
        const state = await holderChainState(c, stale);
        if (state.running) throw busy(input.cluster, stale);
        const reason = `holder ${stale.workflowId} (run ${stale.runId}) is ${state.status}`;
        rt.log.warn(`force-releasing the lock of cluster ${input.cluster}: ${reason}`, { cluster: input.cluster, holder: stale.workflowId });
        const fr = await c.workflow.getHandle(lockWorkflowId(input.cluster)).executeUpdate(forceReleaseUpdate, {
          args: [
            {
              workflowId: stale.workflowId,
              runId: stale.runId,
              ...(stale.firstExecutionRunId ? { firstExecutionRunId: stale.firstExecutionRunId } : {}),
              reason,
            },
          ],
        });
        if (fr.released) forceReleased = stale;
        res = await tryAcquire(c, req, null);
      }
      if (!res.granted || !res.holder) {
        const h = res.holder;
        if (h) throw busy(input.cluster, h);
        throw ApplicationFailure.create({ message: `cluster ${input.cluster} lock refused without a holder`, type: Errors.ClusterBusy, nonRetryable: true });
      }
      return { holder: res.holder, forceReleased, ...(carried ? { carried } : {}) };
    },

    async lockRelease(input: LockReleaseInput): Promise<ReleaseResult> {
      const c = client();
      const req = {
        workflowId: input.workflowId,
        runId: input.runId,
        firstExecutionRunId: input.firstExecutionRunId || (await firstRunIdOf(c, input.workflowId, input.runId)),
      };
      const closed = await closedLockHolder(c, input.cluster).catch(() => null);
      if (closed) {
        // The lock workflow was ended from outside. Held by this run: start it again carrying this
        // run and release there, so a later acquire does not find this run as the last holder.
        if (!sameHolder(closed.holder, req)) return { released: false, holder: closed.holder };
        return c.workflow.executeUpdateWithStart(releaseUpdate, { args: [req], startWorkflowOperation: withStart(input.cluster, closed.holder) });
      }
      try {
        return await c.workflow.getHandle(lockWorkflowId(input.cluster)).executeUpdate(releaseUpdate, { args: [req] });
      } catch (err) {
        // No lock workflow running (it ended meanwhile): nothing is held.
        if (err instanceof WorkflowNotFoundError) return { released: false, holder: null };
        throw err;
      }
    },

    /**
     * A child run that claims to run under its parent's lock: the lock's holder must be its parent
     * (or the parent's parent, …: switchover's rejoin under failback), compared by execution chain
     * (the parent's first run id read from its description, since a child knows only the run id of
     * its parent), and that chain must still run. Otherwise refused, naming the holder.
     */
    async lockCheckParent(input: LockCheckParentInput): Promise<LockCheckParentResult> {
      const c = client();
      const { cluster, workflowId, operation, parent } = input;
      const id = lockWorkflowId(cluster);
      let holder: LockHolder | null;
      try {
        holder = await c.workflow.getHandle(id).query(holderQuery);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        holder = null;
      }
      if (holder && !(await holderChainState(c, holder)).running) holder = null;
      const ancestors: string[] = [];
      let cur: { workflowId: string; runId: string } | undefined = parent;
      while (holder && cur && ancestors.length < MAX_ANCESTORS) {
        const d = await describeOrNull(c, cur.workflowId, cur.runId);
        const first = d?.raw.workflowExecutionInfo?.firstRunId || cur.runId;
        if (holder.workflowId === cur.workflowId && (holder.runId === cur.runId || chainOf(holder) === first)) return { holder, heldBy: cur.workflowId };
        ancestors.push(cur.workflowId);
        const up = d?.parentExecution;
        cur = up?.workflowId && up.runId ? { workflowId: up.workflowId, runId: up.runId } : undefined;
      }
      const who = `${operation} ${workflowId} was started as a child of ${parent.workflowId} to run under its lock of cluster ${cluster}`;
      const own = `start ${operation} on its own (\`switchyard ${operation} ${cluster} …\`), which takes the lock itself`;
      if (!holder) {
        throw ApplicationFailure.create({
          message: `${who}, but nobody holds that lock: refused. ${own.charAt(0).toUpperCase()}${own.slice(1)}`,
          type: Errors.LockNotHeld,
          nonRetryable: true,
        });
      }
      throw ApplicationFailure.create({
        message:
          `${who}, but the lock is held by ${describeHolder(holder)}, ` +
          `not by ${ancestors.length > 1 ? `any of ${ancestors.join(', ')}` : parent.workflowId}: ` +
          `refused. Wait for ${holder.workflowId} to finish (or cancel it), then ${own}`,
        type: Errors.ClusterBusy,
        nonRetryable: true,
        details: [holder],
      });
    },
  };
}
