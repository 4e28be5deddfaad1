/**
 * A watch's input checked (both versions of the watch read it the same way): the cluster, the
 * fixed workflow id that makes it one per cluster, and the bounded numbers.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { watchWorkflowId, type WatchCarry, type WatchInput } from '../../contract/watch';

function bounded(v: unknown, dflt: number, min: number, max: number, what: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw ApplicationFailure.nonRetryable(`watch: ${what} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`, 'ConfigError');
  return v;
}

export interface WatchSettings {
  cluster: string;
  workflowId: string;
  everySeconds: number;
  failuresToStage: number;
  ticksPerRun: number;
  carry: WatchCarry;
}

export function watchSettings(input: WatchInput): WatchSettings {
  const cluster = typeof input?.cluster === 'string' ? input.cluster : '';
  if (!cluster) throw ApplicationFailure.nonRetryable('watch input needs "cluster"', 'ConfigError');
  const { workflowId } = workflowInfo();
  if (workflowId !== watchWorkflowId(cluster))
    throw ApplicationFailure.nonRetryable(
      `a watch of ${cluster} runs as workflow ${watchWorkflowId(cluster)} (one per cluster), not ${workflowId}: start it with \`switchyard watch ${cluster}\``,
      'ConfigError',
    );
  return {
    cluster,
    workflowId,
    everySeconds: bounded(input.everySeconds, 5, 1, 3600, 'everySeconds'),
    failuresToStage: bounded(input.failures, 3, 1, 100, 'failures'),
    ticksPerRun: bounded(input.ticksPerRun, 150, 2, 1000, 'ticksPerRun'),
    carry: input.carry ?? { primary: null, consecutiveFailures: 0, staged: null, ticks: 0, since: new Date().toISOString() },
  };
}
