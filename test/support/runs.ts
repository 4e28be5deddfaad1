/**
 * What the end-to-end tests read off a stage the same way in every file: a run's failure, its
 * steps, the timeline a node is on, a standby having replayed what the primary wrote.
 */
import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import type { Progress } from '../../src/contract/messages';
import type { Stage } from './stage';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const stepsNamed = (p: { steps: Progress['steps'] }, re: RegExp) => p.steps.filter((s) => re.test(s.name));
export const waitingAt = (cp: string) => (p: Progress) => p.waitingFor === cp;

/** The timeline of the WAL a node writes or replays now. */
export async function timelineOf(st: Stage, node: string): Promise<number> {
  const [r] = await st.nodeQuery(
    node,
    `SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver UNION ALL SELECT timeline_id FROM pg_control_checkpoint() LIMIT 1)
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli`,
  );
  return Number(r.tli);
}

/** The run must fail: its innermost cause's message and failure type. */
export async function failureOf(p: Promise<unknown>): Promise<{ message: string; type: string | undefined }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, `expected the run to fail, got ${String(err)}`);
    let e: Error = err;
    while (e.cause instanceof Error) e = e.cause;
    return { message: e.message, type: (e as { type?: string }).type };
  }
  throw new Error('expected the run to fail, but it completed');
}

/** Wait until `standby` has replayed everything `primary` had written when this was called. */
export async function waitReplayed(st: Stage, standby: string, primary: string, timeoutMs = 60_000): Promise<void> {
  const [{ lsn }] = await st.nodeQuery(primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await st.nodeQuery(standby, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done, pg_last_wal_replay_lsn()::text AS at', [lsn]);
    if (r.done === true) return;
    if (Date.now() > deadline) throw new Error(`${standby} did not replay up to ${String(lsn)} within ${timeoutMs} ms (at ${String(r.at)})`);
    await sleep(200);
  }
}
