/**
 * The watch: one long-running workflow per cluster that probes its primary every interval and,
 * after enough consecutive failures, stages a failover (started, waiting for a person at its
 * checkpoints). Its id, messages and status are shared by the workflow, the CLI and the console.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

/** One watch per cluster, whatever id a person types: this is its workflow id. */
export function watchWorkflowId(cluster: string): string {
  return `switchyard-watch-${cluster}`;
}

export interface WatchInput {
  cluster: string;
  /** Seconds between probes (default 5). */
  everySeconds?: number;
  /** Consecutive failed probes of the primary before a failover is staged (default 3). */
  failures?: number;
  requestedBy: string;
  /** Probes before the run continues as new (default 150: its history stays a few thousand events). */
  ticksPerRun?: number;
  /** Carried across continue-as-new. */
  carry?: WatchCarry;
}

export interface WatchCarry {
  primary: string | null;
  consecutiveFailures: number;
  /** The failover this watch staged and that may still run. */
  staged: { workflowId: string; at: string } | null;
  ticks: number;
  since: string;
}

export interface WatchProbe {
  node: string;
  /** "primary", "standby", "refused", "no-answer", "unknown" (with why). */
  verdict: string;
  detail: string;
}

export interface WatchStatus {
  cluster: string;
  everySeconds: number;
  failuresToStage: number;
  since: string;
  ticks: number;
  /** The node seen as the writable primary at the last good probe. */
  primary: string | null;
  consecutiveFailures: number;
  lastProbeAt: string | null;
  probes: WatchProbe[];
  staged: { workflowId: string; at: string } | null;
  /** What the watch did or decided last, for a person. */
  last: string;
}

export const watchStatusQuery = defineQuery<WatchStatus>('watchStatus');
export const watchStopSignal = defineSignal<[{ by: string }]>('stop');
