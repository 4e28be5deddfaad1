/**
 * `switchyard archive <cluster>` starts the cluster's walArchive workflow (one per cluster: its
 * workflow id is fixed, so a second start reports the running one); `--stop` ends it. And the
 * check of a --target-time the CLI passes to drills.
 */
import type { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { walArchiveStatusQuery, walArchiveStopSignal, walArchiveWorkflowId, type WalArchiveState } from '../contract/wal-archive';
import { TASK_QUEUE } from '../temporal-target';
import { target, UsageError } from './cli-common';
import { withClient } from './runs';

/** An ISO time with a date and a time of day (a zone, or UTC), normalised; a UsageError otherwise. */
export function checkTargetTime(v: string): string {
  const t = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--target-time: expected an ISO time such as 2026-12-04T03:15:00Z, got ${JSON.stringify(v)}`);
  if (t > Date.now()) throw new UsageError(`--target-time ${v} is in the future: a restore can only reach a time the archive has passed`);
  return new Date(t).toISOString();
}

function formatState(id: string, s: WalArchiveState): string {
  const last = s.events[s.events.length - 1];
  return (
    `${id}: following ${s.following ?? 'nothing yet'} after ${s.rounds} rounds; ${s.uploaded} WAL files copied to the store\n` +
    (last ? `last change ${last.at}: ${last.action} (${last.detail})\n` : '') +
    (s.problem ? `problem: ${s.problem}\n` : '')
  );
}

export async function archiveCommand(cmd: Command, cluster: string, o: { stop: boolean; by: string; json: boolean }): Promise<void> {
  const id = walArchiveWorkflowId(cluster);
  await withClient(await target(cmd), async (client) => {
    if (o.stop) {
      await client.workflow.getHandle(id).signal(walArchiveStopSignal, { by: o.by });
      process.stdout.write(`asked ${id} to stop archiving (pg_receivewal is stopped; the slot stays)\n`);
      return;
    }
    try {
      await client.workflow.start('walArchive', { taskQueue: TASK_QUEUE, workflowId: id, args: [{ cluster, requestedBy: o.by }] });
      process.stdout.write(`started ${id}: pg_receivewal follows the primary of ${cluster}\n`);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const s = await client.workflow.getHandle(id).query(walArchiveStatusQuery);
      process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : `already running: ${formatState(id, s)}`);
    }
  });
}
