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

/** A failover the watch staged for the current outage. */
export interface StagedFailover {
  workflowId: string;
  at: string;
  /** Whether it was allowed to go on without a person (failover.automatic, anti-flapping); absent before automatic mode: false. */
  automatic?: boolean;
}

/** Anti-flapping: the last failover staged as automatic, and whether a person acknowledged it. */
export interface AntiFlap {
  last: { workflowId: string; at: string } | null;
  ackedBy: string | null;
  ackedAt: string | null;
}

/** A warning that needs a person but no failover, open from `since` until its check passes again. */
export interface Incident {
  key: string;
  since: string;
  detail: string;
  /** Consecutive probes it failed in (opened, and notified, at 2). */
  seen: number;
  notified: boolean;
}

export interface WatchCarry {
  primary: string | null;
  consecutiveFailures: number;
  /** Failed probes in a row that every vantage point agreed with (absent before vantage points: consecutiveFailures). */
  confirmedFailures?: number;
  /** The failover this watch staged and that may still run. */
  staged: StagedFailover | null;
  ticks: number;
  since: string;
  incidents?: Incident[];
  antiFlap?: AntiFlap;
  /** The primary the watch saw replaced, until it answers as a standby again. */
  replaced?: { node: string; newPrimary: string; since: string } | null;
}

/** The memo key under which each run of a watch keeps its anti-flapping state (read by a watch started again). */
export const ANTI_FLAP_MEMO = 'switchyardAntiFlap';

export interface WatchProbe {
  node: string;
  /** "primary", "standby", "refused", "no-answer", "unknown" (with why). */
  verdict: string;
  detail: string;
}

/**
 * A former primary that is not a standby yet: one the watch saw lose the primary role to another
 * node, or one whose data directory holds a failover's fence marker.
 */
export interface FormerPrimary {
  node: string;
  newPrimary: string;
  /** `marked`: its fence marker was read; `unreadable`: its host cannot be asked (down); `not-marked`: read, no marker. */
  fence: 'marked' | 'unreadable' | 'not-marked';
  /** From the marker, when read. */
  fencedBy: string | null;
  /** When it was fenced (marker) or when the watch first saw another primary. */
  since: string;
  /** It answers on its port again (a restart, or the guard's read-only start). */
  answers: boolean;
  /** The command that makes it a standby again. */
  rejoin: string;
}

/** One word for where the cluster stands at the last probe (also the SwitchyardVerdict search attribute). */
export type WatchVerdict = 'starting' | 'ok' | 'warning' | 'primary-failing' | 'partition' | 'unconfirmed' | 'staged' | 'split-brain';

export interface WatchStatus {
  cluster: string;
  everySeconds: number;
  failuresToStage: number;
  since: string;
  ticks: number;
  verdict: WatchVerdict;
  /** The node seen as the writable primary at the last good probe. */
  primary: string | null;
  consecutiveFailures: number;
  /** Failed probes in a row that every vantage point agreed with: a failover is staged at failuresToStage. */
  confirmedFailures: number;
  lastProbeAt: string | null;
  probes: WatchProbe[];
  /** The other sites' view of the database nodes, from the last probe in which no primary answered the worker. */
  vantage: { node: string; from: string; verdict: string; detail: string }[];
  staged: StagedFailover | null;
  /** Open warnings (notified once at their start, and again at their end). */
  incidents: Incident[];
  formerPrimaries: FormerPrimary[];
  automatic: { enabled: boolean; coolDownSeconds: number; antiFlap: AntiFlap };
  /** What the watch did or decided last, for a person. */
  last: string;
}

export const watchStatusQuery = defineQuery<WatchStatus>('watchStatus');
export const watchStopSignal = defineSignal<[{ by: string }]>('stop');
/** A person acknowledges the last automatic failover: the next one may be automatic again. */
export const watchAckSignal = defineSignal<[{ by: string; comment?: string }]>('ack');
