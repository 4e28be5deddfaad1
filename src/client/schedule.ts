/**
 * Backups on Temporal Schedules: one schedule per cluster, id `switchyard-backup-<cluster>`, whose
 * action starts the `backup` workflow. Each scheduled run gets its own workflow id from Temporal
 * (`switchyard-backup-<cluster>-<scheduled time>`), and the workflow derives its backup id from
 * it, so a resumed or retried run never makes a second backup. Overlap: skip (a backup still
 * running when the next is due makes the next one skip, never two at once); missed runs within
 * the catch-up window are taken when the server is back. Visible and controllable in the Temporal
 * UI (Schedules) as well.
 */
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription, type ScheduleSummary } from '@temporalio/client';
import { DURATION_RE, durationSeconds } from '../topology/schema';
import { TASK_QUEUE } from '../temporal-target';
import type { BackupInput } from '../workflows/backup';

export const SCHEDULE_PREFIX = 'switchyard-backup-';

export function scheduleIdOf(cluster: string): string {
  return `${SCHEDULE_PREFIX}${cluster}`;
}

export interface BackupScheduleOptions {
  cluster: string;
  cron: string;
  keepLast?: number;
  maxAge?: string;
  drill?: boolean;
  kinds?: ('pg' | 'ebs')[];
  /** How far back missed runs are still taken after an outage (a duration: "1h"). */
  catchupWindow: string;
  createdBy: string;
}

export class ScheduleInputError extends Error {}

/** Five-field cron ("0 *\/6 * * *") or a Temporal shorthand ("@daily", "@every 6h"); checked before the server sees it. */
export function checkCron(cron: string): string {
  const c = cron.trim();
  if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(c) || /^@every \d+[smhd]( offset \d+[smhd])?$/.test(c)) return c;
  const fields = c.split(/\s+/);
  if (fields.length !== 5 || !fields.every((f) => /^[0-9*/,\-A-Za-z?]+$/.test(f))) {
    throw new ScheduleInputError(
      `--cron: expected five cron fields "minute hour day-of-month month day-of-week" (e.g. "0 */6 * * *") or @daily / @hourly / "@every 6h"; ` +
        `got ${JSON.stringify(cron)}`,
    );
  }
  return c;
}

export function checkDuration(flag: string, v: string): string {
  if (!DURATION_RE.test(v)) throw new ScheduleInputError(`${flag}: expected a duration such as "90m", "36h" or "14d"; got ${JSON.stringify(v)}`);
  return v;
}

export function backupArgs(o: BackupScheduleOptions): BackupInput {
  return {
    cluster: o.cluster,
    requestedBy: `schedule ${scheduleIdOf(o.cluster)} (set by ${o.createdBy})`,
    ...(o.kinds ? { kinds: o.kinds } : {}),
    ...(o.keepLast !== undefined ? { keepLast: o.keepLast } : {}),
    ...(o.maxAge !== undefined ? { maxAge: o.maxAge } : {}),
    ...(o.drill ? { drill: true } : {}),
  };
}

function scheduleBody(o: BackupScheduleOptions) {
  return {
    spec: { cronExpressions: [checkCron(o.cron)] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'backup',
      taskQueue: TASK_QUEUE,
      workflowId: scheduleIdOf(o.cluster),
      args: [backupArgs(o)],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: durationSeconds(checkDuration('--catchup-window', o.catchupWindow)) * 1000 },
  };
}

/** Create the cluster's schedule, or update it in place (keeping its paused state and history). */
export async function upsertBackupSchedule(client: Client, o: BackupScheduleOptions): Promise<'created' | 'updated'> {
  const scheduleId = scheduleIdOf(o.cluster);
  const body = scheduleBody(o);
  const handle = client.schedule.getHandle(scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create({ scheduleId, ...body, state: { note: `backups of ${o.cluster}, set by ${o.createdBy}` } });
    return 'created';
  }
  await handle.update((prev) => ({ ...prev, spec: body.spec, action: body.action, policies: { ...prev.policies, ...body.policies } }));
  return 'updated';
}

export interface ScheduleView {
  scheduleId: string;
  cluster: string | null;
  cron: string[];
  paused: boolean;
  note: string | null;
  workflowType: string | null;
  args: unknown;
  overlap: string | null;
  catchupWindowMs: number | null;
  nextRuns: string[];
  recentRuns: { scheduledAt: string; takenAt: string; workflowId: string | null }[];
  running: string[];
}

function clusterOfId(id: string): string | null {
  return id.startsWith(SCHEDULE_PREFIX) ? id.slice(SCHEDULE_PREFIX.length) : null;
}

export function viewOf(id: string, d: ScheduleDescription): ScheduleView {
  const action = d.action as { type: string; workflowType?: string; args?: unknown[] };
  return {
    scheduleId: id,
    cluster: clusterOfId(id),
    cron: d.spec.calendars ? describeCalendars(d) : [],
    paused: d.state.paused,
    note: d.state.note ?? null,
    workflowType: action.workflowType ?? null,
    args: action.args?.[0] ?? null,
    overlap: d.policies.overlap ?? null,
    catchupWindowMs: d.policies.catchupWindow ?? null,
    nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
      workflowId: a.action.type === 'startWorkflow' ? a.action.workflow.workflowId : null,
    })),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
  };
}

/** The server turns cron strings into calendar specs; show them back in a readable form. */
function describeCalendars(d: ScheduleDescription): string[] {
  return (d.spec.calendars ?? []).map((c) => {
    const f = (r: unknown) => JSON.stringify(r);
    return `minute ${f(c.minute)} hour ${f(c.hour)} dayOfMonth ${f(c.dayOfMonth)} month ${f(c.month)} dayOfWeek ${f(c.dayOfWeek)}`;
  });
}

export async function listBackupSchedules(
  client: Client,
): Promise<{ scheduleId: string; cluster: string | null; paused: boolean; nextRuns: string[]; workflowType: string | null }[]> {
  const out: { scheduleId: string; cluster: string | null; paused: boolean; nextRuns: string[]; workflowType: string | null }[] = [];
  for await (const s of client.schedule.list() as AsyncIterable<ScheduleSummary>) {
    if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
    out.push({
      scheduleId: s.scheduleId,
      cluster: clusterOfId(s.scheduleId),
      paused: s.state.paused,
      nextRuns: (s.info?.nextActionTimes ?? []).map((t) => t.toISOString()),
      workflowType: s.action?.type === 'startWorkflow' ? s.action.workflowType : null,
    });
  }
  return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

/** A schedule handle for a cluster (or a schedule id), failing with a clear message when there is none. */
export async function describeBackupSchedule(client: Client, clusterOrId: string): Promise<ScheduleView> {
  const id = clusterOrId.startsWith(SCHEDULE_PREFIX) ? clusterOrId : scheduleIdOf(clusterOrId);
  try {
    return viewOf(id, await client.schedule.getHandle(id).describe());
  } catch (err) {
    if (err instanceof ScheduleNotFoundError)
      throw new ScheduleInputError(
        `no backup schedule "${id}": create it with \`switchyard schedule backup ${clusterOfId(id) ?? clusterOrId} --cron "0 */6 * * *"\``,
      );
    throw err;
  }
}

export async function controlSchedule(
  client: Client,
  clusterOrId: string,
  what: 'pause' | 'resume' | 'trigger' | 'delete',
  by: string,
): Promise<ScheduleView | null> {
  const view = await describeBackupSchedule(client, clusterOrId);
  const h = client.schedule.getHandle(view.scheduleId);
  if (what === 'pause') await h.pause(`paused by ${by}`);
  if (what === 'resume') await h.unpause(`resumed by ${by}`);
  // A trigger follows the schedule's own overlap policy: skipped while a backup is still running.
  if (what === 'trigger') await h.trigger();
  if (what === 'delete') {
    await h.delete();
    return null;
  }
  return describeBackupSchedule(client, view.scheduleId);
}

export function formatScheduleView(v: ScheduleView): string {
  const args = v.args as BackupInput | null;
  return [
    `schedule ${v.scheduleId}${v.paused ? '  PAUSED' : ''}${v.note ? `  (${v.note})` : ''}`,
    `  runs      ${v.workflowType ?? '?'} of ${args?.cluster ?? v.cluster ?? '?'}${args?.kinds ? ` (${args.kinds.join(' + ')})` : ''}` +
      `${args?.drill ? ', each followed by a drill' : ''}${args?.keepLast ? `, keep last ${args.keepLast}` : ''}` +
      `${args?.maxAge ? `, max age ${args.maxAge}` : ''}`,
    `  when      ${v.cron.join('; ') || '?'}`,
    `  overlap   ${v.overlap ?? '?'}; catch-up window ${v.catchupWindowMs !== null ? `${Math.round(v.catchupWindowMs / 1000)} s` : '?'}`,
    `  next      ${v.nextRuns.slice(0, 3).join(', ') || 'none'}`,
    `  running   ${v.running.join(', ') || 'nothing'}`,
    `  recent    ${
      v.recentRuns
        .slice(-5)
        .map((r) => `${r.takenAt} ${r.workflowId ?? ''}`)
        .join('\n            ') || 'none yet'
    }`,
    '',
  ].join('\n');
}
