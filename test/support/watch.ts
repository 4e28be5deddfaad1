/**
 * The watch in tests: its status, waiting until it shows something, and a staged failover
 * carried to its end by a person who approves each checkpoint it waits at.
 */
import assert from 'node:assert/strict';
import { decide } from '../../src/client/runs';
import type { Progress } from '../../src/contract/messages';
import { watchStatusQuery, watchWorkflowId, type WatchStatus } from '../../src/contract/watch';
import type { FailoverResult } from '../../src/workflows/failover';
import { sleep } from './runs';
import type { Stage } from './stage';

export const watchStatus = (st: Stage, cluster = 'demo') => st.client.workflow.getHandle(watchWorkflowId(cluster)).query(watchStatusQuery);

export async function watchUntil(st: Stage, pred: (s: WatchStatus) => boolean, what: string, ms = 90_000): Promise<WatchStatus> {
  let s: WatchStatus | null = null;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(250)) {
    s = await watchStatus(st).catch(() => null);
    if (s && pred(s)) return s;
  }
  assert.fail(`the watch never showed ${what}: ${JSON.stringify(s, null, 2)}`);
}

/** Approve whatever the run waits at (as `by`) until it ends; its result. */
export async function approveUntilDone(st: Stage, id: string, by: string): Promise<FailoverResult> {
  const h = st.client.workflow.getHandle(id);
  for (let i = 0; i < 480 && (await h.describe()).status.name === 'RUNNING'; i++) {
    const q = await h.query<Progress>('progress');
    if (q.waitingFor) await decide(st.client, id, { checkpoint: q.waitingFor, decision: 'approve', by, comment: 'checked by hand' });
    await sleep(250);
  }
  return (await h.result()) as FailoverResult;
}
