/** Running the readiness workflow from outside and printing its report. */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createLogger } from '../logging';
import { TASK_QUEUE, type TemporalTarget } from '../temporal-target';
import type { readiness } from '../workflows';
import { type ReadinessReport } from '../contract/readiness';
import { formatBytes } from '../contract/format';
import { connectClient, targetClient } from '../temporal-connection';

/** Is a worker polling the switchyard task queue right now? */
export async function workerIsPolling(client: Client, namespace: string, taskQueue = TASK_QUEUE): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  const now = Date.now();
  return (res.pollers ?? []).some((p) => {
    const t = p.lastAccessTime?.seconds;
    return t !== undefined && t !== null && now - Number(t) * 1000 < 90_000;
  });
}

/** The message of the innermost cause: what a person needs to read. */
export function rootMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && (e as { cause?: unknown }).cause instanceof Error) e = (e as { cause?: unknown }).cause;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Runs `readiness` for a cluster on Temporal. When no worker polls the switchyard queue, a worker
 * is run inside this process on a private task queue for this one check (so it can never pick up
 * another runbook's tasks), and stopped afterwards.
 */
export async function runReadiness(opts: { cluster: string; configPath: string; target: TemporalTarget }): Promise<ReadinessReport> {
  const connection = await connectClient(opts.target, { connectTimeout: '10 seconds' }).catch((err: unknown) => {
    throw new Error(`cannot reach Temporal at ${opts.target.address}: ${rootMessage(err)} (is the server running? --address / TEMPORAL_ADDRESS)`);
  });
  try {
    const client = targetClient(opts.target, connection);
    const start = (taskQueue: string) =>
      client.workflow.execute<typeof readiness>('readiness', {
        taskQueue,
        workflowId: `readiness-${opts.cluster}-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`,
        args: [{ cluster: opts.cluster }],
        workflowExecutionTimeout: '5 minutes',
      });
    try {
      if (await workerIsPolling(client, opts.target.namespace)) return await start(TASK_QUEUE);
      // The worker SDK and the activities load only here, when this process must run the check itself.
      const { createWorker, installRuntime } = require('../worker') as typeof import('../worker');
      const logger = createLogger({ level: process.env.SWITCHYARD_LOG_LEVEL ?? 'warn', destination: 2, name: 'switchyard-check' });
      installRuntime(logger);
      const taskQueue = `switchyard-check-${randomUUID()}`;
      const { worker, close: closeWorker } = await createWorker({
        configPath: opts.configPath,
        target: opts.target,
        taskQueue,
        logger,
        identity: `switchyard check@${hostname()}`,
      });
      try {
        return await worker.runUntil(start(taskQueue));
      } finally {
        await closeWorker();
      }
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new Error(`readiness of ${opts.cluster} failed: ${rootMessage(err)}`);
      throw err;
    }
  } finally {
    await connection.close();
  }
}

export function formatReadiness(r: ReadinessReport): string {
  const lines: string[] = [];
  lines.push(
    `cluster ${r.cluster}: ${r.ready ? 'READY' : 'NOT READY'}   primary ${r.primarySite ?? 'none'}${r.primaryNode ? ` (${r.primaryNode})` : ''}, ` +
      `standby ${r.standbySite ?? 'none'}${r.standbyNode ? ` (${r.standbyNode})` : ''}, ` +
      `lag ${formatBytes(r.lagBytes)} / ${r.lagSeconds === null ? 'unknown' : `${r.lagSeconds.toFixed(1)} s`}`,
  );
  const w = Math.max(...r.checks.map((c) => c.name.length));
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(w)}  ${c.detail}`);
  const t = Object.entries(r.traffic);
  if (t.length) lines.push(`traffic: ${t.map(([d, v]) => `${d} (${v.kind}) → ${v.site ?? 'none'}${v.target ? ` [${v.target}]` : ''}`).join(', ')}`);
  lines.push(`observed ${r.observedAt}`);
  return `${lines.join('\n')}\n`;
}
