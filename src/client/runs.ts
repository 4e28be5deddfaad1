/** Talking to a running runbook from outside: decisions at checkpoints, and its progress. */
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import type { TemporalTarget } from '../worker';
import type { DecideResult, Decision, Progress, StepRecord } from '../workflows/messages';
import { rootMessage } from './readiness';

export async function withClient<T>(target: TemporalTarget, fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: target.address, connectTimeout: '10 seconds' }).catch((err: unknown) => {
    throw new Error(`cannot reach Temporal at ${target.address}: ${rootMessage(err)} (is the server running? --address / TEMPORAL_ADDRESS)`);
  });
  try {
    return await fn(new Client({ connection, namespace: target.namespace }));
  } finally {
    await connection.close();
  }
}

export type DecideAnswer = { accepted: true; result: DecideResult } | { accepted: false; reason: string };

/** Sends the `decide` update; a refusal comes back with the run's reason and changed nothing. */
export async function decide(client: Client, workflowId: string, d: Decision): Promise<DecideAnswer> {
  try {
    const result = await client.workflow.getHandle(workflowId).executeUpdate<DecideResult, [Decision]>('decide', { args: [d] });
    return { accepted: true, result };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) return { accepted: false, reason: rootMessage(err) };
    throw new Error(`could not deliver the decision to ${workflowId}: ${rootMessage(err)}`);
  }
}

export interface RunStatus {
  workflowId: string;
  runId: string;
  type: string;
  /** RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW */
  status: string;
  progress: Progress | null;
  /** Why it failed, when it did. */
  failure: string | null;
}

export async function runStatus(client: Client, workflowId: string): Promise<RunStatus> {
  const h = client.workflow.getHandle(workflowId);
  const d = await h.describe();
  const progress = await h.query<Progress>('progress').catch(() => null);
  let failure: string | null = null;
  if (d.status.name === 'FAILED' || d.status.name === 'TERMINATED' || d.status.name === 'TIMED_OUT' || d.status.name === 'CANCELLED') {
    failure = await h.result().then(
      () => null,
      (err: unknown) => rootMessage(err),
    );
  }
  return { workflowId, runId: d.runId, type: d.type, status: d.status.name, progress, failure };
}

export function formatStep(s: StepRecord): string {
  const took = s.endedAt ? `${((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)} s` : '…';
  return `  ${s.state.padEnd(7)} ${s.name}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ''}  [${took}]${s.detail ? `  ${s.detail}` : ''}`;
}

export function formatStatus(r: RunStatus): string {
  const lines = [`${r.workflowId} (${r.type}): ${r.status}${r.progress?.waitingFor ? `, waiting at checkpoint "${r.progress.waitingFor}"` : ''}`];
  for (const s of r.progress?.steps ?? []) lines.push(formatStep(s));
  if (r.failure) lines.push(`failed: ${r.failure}`);
  return `${lines.join('\n')}\n`;
}

/** Follows a run until it closes, printing each step as it changes; true only when it completed. */
export async function follow(client: Client, workflowId: string, print: (line: string) => void, pollMs = 1000): Promise<RunStatus> {
  const seen = new Map<number, string>();
  let waiting: string | null = null;
  for (;;) {
    const r = await runStatus(client, workflowId);
    (r.progress?.steps ?? []).forEach((s, i) => {
      const key = `${s.state}|${s.detail}`;
      if (seen.get(i) !== key) {
        seen.set(i, key);
        print(formatStep(s));
      }
    });
    const w = r.progress?.waitingFor ?? null;
    if (w !== waiting) {
      waiting = w;
      if (w) print(`  waiting at checkpoint "${w}": decide with  switchyard approve|reject ${workflowId} ${w} --as <name>`);
    }
    if (r.status !== 'RUNNING') return r;
    await new Promise((res) => setTimeout(res, pollMs));
  }
}
