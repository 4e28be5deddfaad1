/** Talking to a running runbook from outside: decisions at checkpoints, and its progress. */
import { Client, WorkflowUpdateFailedError } from '@temporalio/client';
import { TASK_QUEUE, type TemporalTarget } from '../temporal-target';
import type { DecideResult, Decision, Progress, StepRecord } from '../contract/messages';
import { randomUUID, type KeyObject } from 'node:crypto';
import { signDecision } from './signing';
import { rootMessage, workerIsPolling } from './readiness-report';
import { connectClient, targetClient } from '../temporal-connection';

export async function withClient<T>(target: TemporalTarget, fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await connectClient(target, { connectTimeout: '10 seconds' }).catch((err: unknown) => {
    throw new Error(`cannot reach Temporal at ${target.address}: ${rootMessage(err)} (is the server running? --address / TEMPORAL_ADDRESS)`);
  });
  try {
    return await fn(targetClient(target, connection));
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

/** A key that vouches for decisions: the console's ("console") or an operator's ("operator:<name>"). */
export interface Signer {
  key: KeyObject;
  name: string;
}

/**
 * Sends a decision signed for the wait the run is at now (its run id and wait id, from the
 * `progress` query); a run that waits elsewhere refuses it with its own reason.
 */
export async function decideSigned(client: Client, workflowId: string, d: Decision, signer: Signer): Promise<DecideAnswer> {
  const h = client.workflow.getHandle(workflowId);
  const progress = await h.query<Progress>('progress').catch((err: unknown) => {
    throw new Error(`could not read ${workflowId}'s progress to sign the decision: ${rootMessage(err)}`);
  });
  const w = progress.waiting;
  const at =
    w && w.checkpoint === d.checkpoint
      ? { workflowId, runId: w.runId, waitId: w.waitId }
      : { workflowId, runId: (await h.describe()).runId, waitId: `${d.checkpoint}#0` };
  return decide(client, workflowId, signDecision(d, at, signer.key, signer.name));
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
  /** The run's result, once it completed. */
  result?: unknown;
  /**
   * What the runbook says of itself: "completed", "planned" (dry run), "aborted" (stopped safely,
   * e.g. a rejected checkpoint). Null when the result carries no outcome or the run is not complete.
   */
  outcome: string | null;
  /** Completed, and not a runbook that stopped itself before doing its job. */
  succeeded: boolean;
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
  let result: unknown;
  let outcome: string | null = null;
  if (d.status.name === 'COMPLETED') {
    result = await h.result().catch(() => undefined);
    const o = (result as { outcome?: unknown } | null | undefined)?.outcome;
    outcome = typeof o === 'string' ? o : null;
  }
  const succeeded = d.status.name === 'COMPLETED' && outcome !== 'aborted';
  return {
    workflowId,
    runId: d.runId,
    type: d.type,
    status: d.status.name,
    progress,
    failure,
    ...(d.status.name === 'COMPLETED' ? { result } : {}),
    outcome,
    succeeded,
  };
}

/** A default workflow id for a runbook run: readable, sortable, unique. */
export function runId(operation: string, cluster: string, now = new Date()): string {
  return `${operation}-${cluster}-${now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomUUID().slice(0, 6)}`;
}

/** Starts a runbook on the switchyard task queue; when no worker polls it, says so on stderr. */
export async function startRunbook(
  client: Client,
  namespace: string,
  type: string,
  input: object,
  opts: { workflowId: string; taskQueue?: string; warn?: (s: string) => void },
): Promise<string> {
  const taskQueue = opts.taskQueue ?? TASK_QUEUE;
  if (!(await workerIsPolling(client, namespace, taskQueue).catch(() => true))) {
    (opts.warn ?? ((s: string) => process.stderr.write(`${s}\n`)))(
      `switchyard: no worker polls task queue "${taskQueue}" right now; the run waits until one does (start one with \`switchyard worker\`)`,
    );
  }
  const handle = await client.workflow.start(type, { taskQueue, workflowId: opts.workflowId, args: [input] });
  return handle.workflowId;
}

export function formatStep(s: StepRecord): string {
  const took = s.endedAt ? `${((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)} s` : '…';
  return `  ${s.state.padEnd(7)} ${s.name}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ''}  [${took}]${s.detail ? `  ${s.detail}` : ''}`;
}

export function formatStatus(r: RunStatus): string {
  const lines = [`${r.workflowId} (${r.type}): ${r.status}${r.progress?.waitingFor ? `, waiting at checkpoint "${r.progress.waitingFor}"` : ''}`];
  for (const s of r.progress?.steps ?? []) lines.push(formatStep(s));
  if (r.failure) lines.push(`failed: ${r.failure}`);
  if (r.outcome && r.outcome !== 'completed') lines.push(`outcome: ${r.outcome}`);
  const res = r.result && typeof r.result === 'object' ? (r.result as { abortedBecause?: unknown; state?: unknown }) : null;
  if (typeof res?.abortedBecause === 'string') lines.push(`stopped because: ${res.abortedBecause}`);
  if (typeof res?.state === 'string') lines.push(`state: ${res.state}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Follows a run until it closes, printing each step as it changes; true only when it completed.
 * Reads it every pollMs, and at once when it closes (a long poll on its result), so a command
 * with --wait returns when the run ends, not up to pollMs later.
 */
export async function follow(client: Client, workflowId: string, print: (line: string) => void, pollMs = 1000): Promise<RunStatus> {
  const seen = new Map<number, string>();
  let waiting: string | null = null;
  const closed = client.workflow
    .getHandle(workflowId)
    .result()
    .then(
      () => undefined,
      () => undefined,
    );
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
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((res) => (timer = setTimeout(res, pollMs))), closed]);
    clearTimeout(timer);
  }
}

/** The end of a followed run, for a person: what it did, or why it stopped. */
export function formatOutcome(r: RunStatus): string {
  const lines: string[] = [];
  const res = (r.result !== null && typeof r.result === 'object' ? r.result : null) as {
    state?: string;
    abortedBecause?: string | null;
    plan?: { step: string; target: string; action: string }[];
    rto?: { fromDecisionSeconds: number | null; fromStartSeconds: number | null };
    dataLostBytes?: number | null;
    dataLoss?: { detail: string } | null;
  } | null;
  lines.push(`${r.workflowId}: ${r.status}${r.outcome ? ` (${r.outcome})` : ''}`);
  if (r.failure) lines.push(`  failed: ${r.failure}`);
  if (res?.plan?.length && r.outcome === 'planned') {
    lines.push('  plan:');
    for (const p of res.plan) lines.push(`    ${p.step.padEnd(34)} ${p.target.padEnd(12)} ${p.action}`);
  }
  if (res?.abortedBecause) lines.push(`  stopped because: ${res.abortedBecause}`);
  if (res?.state) lines.push(`  state: ${res.state}`);
  if (res?.rto && res.rto.fromDecisionSeconds !== null)
    lines.push(`  RTO: ${res.rto.fromDecisionSeconds} s from the decision to promote until traffic was verified; ${res.rto.fromStartSeconds} s from start`);
  if (res && 'dataLostBytes' in res && r.outcome === 'completed')
    lines.push(
      `  data lost: ${res.dataLostBytes === null || res.dataLostBytes === undefined ? 'unknown' : `${res.dataLostBytes} bytes`}` +
        `${res.dataLoss ? ` (${res.dataLoss.detail})` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}
