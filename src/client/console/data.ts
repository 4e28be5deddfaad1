/**
 * What the console shows, read from Temporal: runs waiting at a checkpoint (visibility's
 * `SwitchyardWaitingFor`, then each run's `progress` query), a run with its input, steps,
 * decisions and result, recent runbook runs, and a cluster's readiness (the `readiness` workflow,
 * run by the worker). Closed runs do not change, so their summaries are kept once read.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import type { Approval, Progress, StepRecord, Waiting } from '../../contract/messages';
import type { ReadinessReport } from '../../contract/readiness';
import { watchAckSignal, watchStatusQuery, watchWorkflowId, type WatchStatus } from '../../contract/watch';
import { TASK_QUEUE } from '../../temporal-target';
import { rootMessage, workerIsPolling } from '../readiness-report';
import { runStatus, type RunStatus } from '../runs';

/** The runbooks the console lists. */
const LISTED_TYPES = ['failover', 'switchover', 'rejoin', 'failback', 'backup', 'restore'];

export interface WaitingRun {
  workflowId: string;
  cluster: string;
  operation: string;
  checkpoint: string;
  prompt: string;
  requestedBy: string;
  reason: string | null;
  startedAt: string;
  deadline: string;
  approvals: { by: string; at: string; comment: string | null; verifiedBy: string | null }[];
  required: number;
  eligible: string[];
  starterExcluded: boolean;
  verifiedDecisions: 'required' | 'optional';
  waitId: string;
  steps: StepRecord[];
}

export interface RunInput {
  requestedBy: string | null;
  reason: string | null;
  dryRun: boolean;
}

export interface RunSummary {
  workflowId: string;
  type: string;
  cluster: string | null;
  status: string;
  startedAt: string | null;
  closedAt: string | null;
  outcome: string | null;
  requestedBy: string | null;
  rtoSeconds: number | null;
  dataLostBytes: number | null;
  writeDowntimeMs: number | null;
}

export interface RunView extends RunStatus {
  cluster: string | null;
  input: RunInput;
  startedAt: string | null;
  closedAt: string | null;
  decisions: { checkpoint: string; decision: string; by: string | null; at: string; comment: string | null; approvals: Approval[] }[];
}

export class ConsoleData {
  private readonly inputs = new Map<string, RunInput>();
  private readonly closed = new Map<string, RunSummary>();
  private readonly readiness = new Map<string, { at: number; report: Promise<ReadinessReport> }>();
  /** Readiness runs still followed: the connection must outlive them (drain). */
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    private readonly client: Client,
    private readonly namespace: string,
  ) {}

  /** Every run waiting at a checkpoint now, oldest wait first. */
  async waiting(): Promise<WaitingRun[]> {
    const out: WaitingRun[] = [];
    for await (const w of this.client.workflow.list({ query: "ExecutionStatus = 'Running' AND SwitchyardWaitingFor IS NOT NULL" })) {
      const h = this.client.workflow.getHandle(w.workflowId, w.runId);
      const p = await h.query<Progress>('progress').catch(() => null);
      const wait = p?.waiting;
      if (!p || !wait) continue;
      const input = await this.input(w.workflowId, w.runId);
      out.push(waitingRun(w.workflowId, p, wait, input));
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** A run as its page shows it; null when there is no such run. */
  async run(workflowId: string): Promise<RunView | null> {
    let status: RunStatus;
    try {
      status = await runStatus(this.client, workflowId);
    } catch (err) {
      if ((err as { name?: string }).name === 'WorkflowNotFoundError') return null;
      throw err;
    }
    const d = await this.client.workflow.getHandle(workflowId).describe();
    const input = await this.input(workflowId, status.runId);
    // Runbooks return their checkpoint outcomes as `checkpoints` (failover) or `decisions`.
    const result = (status.result ?? null) as { decisions?: unknown; checkpoints?: unknown } | null;
    const listed = Array.isArray(result?.checkpoints) ? result.checkpoints : Array.isArray(result?.decisions) ? result.decisions : [];
    const decisions = (listed as RunView['decisions']).filter((d) => d && typeof d === 'object' && typeof d.checkpoint === 'string');
    return {
      ...status,
      cluster: status.progress?.cluster ?? null,
      input,
      startedAt: d.startTime.toISOString(),
      closedAt: d.closeTime?.toISOString() ?? null,
      decisions: decisions.map((x) => ({ ...x, approvals: x.approvals ?? [] })),
    };
  }

  /** The newest runbook runs (running and closed), at most `limit`. */
  async recent(limit = 30): Promise<RunSummary[]> {
    const out: RunSummary[] = [];
    const query = `WorkflowType IN (${LISTED_TYPES.map((t) => `'${t}'`).join(', ')})`;
    for await (const w of this.client.workflow.list({ query, pageSize: limit })) {
      if (out.length >= limit) break;
      const known = this.closed.get(`${w.workflowId}/${w.runId}`);
      if (known) {
        out.push(known);
        continue;
      }
      const s: RunSummary = {
        workflowId: w.workflowId,
        type: w.type,
        cluster: null,
        status: w.status.name,
        startedAt: w.startTime.toISOString(),
        closedAt: w.closeTime?.toISOString() ?? null,
        outcome: null,
        requestedBy: null,
        rtoSeconds: null,
        dataLostBytes: null,
        writeDowntimeMs: null,
      };
      const input = await this.input(w.workflowId, w.runId).catch(() => null);
      s.requestedBy = input?.requestedBy ?? null;
      const h = this.client.workflow.getHandle(w.workflowId, w.runId);
      const p = await h.query<Progress>('progress').catch(() => null);
      s.cluster = p?.cluster ?? null;
      if (w.status.name === 'COMPLETED') {
        const r = (await h.result().catch(() => null)) as Record<string, unknown> | null;
        s.outcome = typeof r?.outcome === 'string' ? r.outcome : null;
        const rto = r?.rto as { fromDecisionSeconds?: number | null; fromStartSeconds?: number | null } | undefined;
        s.rtoSeconds = rto?.fromDecisionSeconds ?? rto?.fromStartSeconds ?? null;
        s.dataLostBytes = typeof r?.dataLostBytes === 'number' ? r.dataLostBytes : null;
        s.writeDowntimeMs = typeof r?.writeDowntimeMs === 'number' ? r.writeDowntimeMs : null;
      }
      if (w.status.name !== 'RUNNING') this.closed.set(`${w.workflowId}/${w.runId}`, s);
      out.push(s);
    }
    return out;
  }

  /** The cluster's readiness (the `check` table), run by the worker; kept for 15 s. */
  async readinessOf(cluster: string, fresh = false): Promise<ReadinessReport> {
    const cached = this.readiness.get(cluster);
    if (cached && !fresh && Date.now() - cached.at < 15_000) return cached.report;
    const report = (async () => {
      if (!(await workerIsPolling(this.client, this.namespace).catch(() => false)))
        throw new Error(`no switchyard worker polls task queue "${TASK_QUEUE}": start one with \`switchyard worker\``);
      return this.client.workflow.execute<(i: { cluster: string }) => Promise<ReadinessReport>>('readiness', {
        taskQueue: TASK_QUEUE,
        workflowId: `readiness-${cluster}-console-${Date.now()}-${randomUUID().slice(0, 6)}`,
        args: [{ cluster }],
        workflowExecutionTimeout: '2 minutes',
      });
    })();
    this.readiness.set(cluster, { at: Date.now(), report });
    const settled = report.catch(() => this.readiness.delete(cluster)).finally(() => this.inflight.delete(settled));
    this.inflight.add(settled);
    return report;
  }

  /** The cluster's watch as it answers now; null when none runs. */
  async watchOf(cluster: string): Promise<WatchStatus | null> {
    const h = this.client.workflow.getHandle(watchWorkflowId(cluster));
    const d = await h.describe().catch((e: unknown) => {
      if (e instanceof WorkflowNotFoundError) return null;
      throw e;
    });
    if (!d || d.status.name !== 'RUNNING') return null;
    return h.query(watchStatusQuery);
  }

  /** A person acknowledges the cluster's last automatic failover (anti-flapping); what the watch recorded. */
  async acknowledge(cluster: string, by: string, comment: string | undefined): Promise<{ outcome: 'accepted' | 'refused'; reason?: string }> {
    const before = await this.watchOf(cluster);
    if (!before) return { outcome: 'refused', reason: `no watch of ${cluster} runs (start one: switchyard watch ${cluster})` };
    const last = before.automatic.antiFlap.last;
    if (!last) return { outcome: 'refused', reason: `no automatic failover of ${cluster} waits for an acknowledgement` };
    if (before.automatic.antiFlap.ackedBy)
      return { outcome: 'refused', reason: `${last.workflowId} was already acknowledged by ${before.automatic.antiFlap.ackedBy}` };
    const h = this.client.workflow.getHandle(watchWorkflowId(cluster));
    await h.signal(watchAckSignal, { by, ...(comment ? { comment } : {}) });
    for (let i = 0; i < 40; i++) {
      const s = await h.query(watchStatusQuery);
      if (s.automatic.antiFlap.ackedBy) return { outcome: 'accepted', reason: `acknowledged ${last.workflowId} as ${s.automatic.antiFlap.ackedBy}` };
      await new Promise((r) => setTimeout(r, 250));
    }
    return { outcome: 'refused', reason: 'the watch did not record the acknowledgement within 10 s' };
  }

  /** Waits (at most `ms`) for the readiness runs still being followed, before the connection closes. */
  async drain(ms: number): Promise<void> {
    if (this.inflight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** Who started the run and why: its first history event's input. */
  private async input(workflowId: string, runId: string): Promise<RunInput> {
    const key = `${workflowId}/${runId}`;
    const known = this.inputs.get(key);
    if (known) return known;
    const res = await this.client.workflowService.getWorkflowExecutionHistory({
      namespace: this.namespace,
      execution: { workflowId, runId },
      maximumPageSize: 1,
    });
    const started = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
    let arg: Record<string, unknown> = {};
    try {
      const [first] = await decodeArrayFromPayloads(this.client.options.loadedDataConverter, started?.input?.payloads);
      if (first && typeof first === 'object') arg = first as Record<string, unknown>;
    } catch (err) {
      arg = { reason: `(input unreadable: ${rootMessage(err)})` };
    }
    const input: RunInput = {
      requestedBy: typeof arg.requestedBy === 'string' ? arg.requestedBy : null,
      reason: typeof arg.reason === 'string' ? arg.reason : null,
      dryRun: arg.dryRun === true,
    };
    this.inputs.set(key, input);
    return input;
  }
}

function waitingRun(workflowId: string, p: Progress, w: Waiting, input: RunInput): WaitingRun {
  return {
    workflowId,
    cluster: p.cluster,
    operation: p.operation,
    checkpoint: w.checkpoint,
    prompt: w.prompt,
    requestedBy: w.requestedBy,
    reason: input.reason,
    startedAt: w.since,
    deadline: w.deadline,
    approvals: w.approvals,
    required: w.required,
    eligible: w.eligible,
    starterExcluded: w.starterExcluded,
    verifiedDecisions: w.verifiedDecisions,
    waitId: w.waitId,
    steps: p.steps,
  };
}
