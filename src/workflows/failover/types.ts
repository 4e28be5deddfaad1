/**
 * The failover's input and result, its patch and checkpoints, and the run context and state that
 * its parts (the files beside this one, run in order by ../failover.ts) share.
 */
import type { ActivityInterfaceFor } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { PgFenceResult } from '../../contract/observations';
import type { PlanStep, StepRecord } from '../../contract/messages';
import type { ClusterLayout } from '../../topology/layout';
import type { CheckpointOutcome, Checkpoints } from '../lib/checkpoint';
import type { DataLoss } from '../lib/data-loss';
import type { Undo } from '../lib/runbook';
import type { StepLog } from '../lib/steps';

export interface FailoverInput {
  cluster: string;
  /** Why, for the step log and the notifications ("dc1 lost power"). */
  reason?: string;
  /** Run only the read-only checks and return the plan. */
  dryRun?: boolean;
  /** Who started the run (the two-person rule compares approvers with this). */
  requestedBy: string;
  /** The site to promote; default: the one standby. */
  to?: string;
  /**
   * Set by the watch when it stages the run: no person decided to fail over, so one is asked at
   * old-primary-dead even when the old primary was fenced, unless `automatic` (allowed by the
   * watch's anti-flapping, and by failover.automatic) and this run fenced it itself.
   */
  staged?: { by: string; automatic: boolean; why: string };
}

/** The patch that brought runs staged by the watch, and automatic mode. */
export const STAGED_PATCH = 'failover-staged';

export const FAILOVER_CHECKPOINTS = ['old-primary-dead', 'accept-data-loss'] as const;

/**
 * The patch that brought a fence that lasts (standby.signal + marker; STONITH; forced instance
 * stop), checks that fail closed (an unknown old primary is never taken for dead; it is checked
 * again right before promotion), the data-loss gate asking for stale lower bounds, an undo that
 * looks for another primary first, the guard, and a failover started again finishing one that promoted.
 */
export const FENCE_PATCH = 'failover-fence-lasts';

export interface FailoverResult {
  cluster: string;
  outcome: 'completed' | 'aborted' | 'planned';
  dryRun: boolean;
  reason: string | null;
  requestedBy: string;
  from: { site: string; node: string };
  to: { site: string; node: string };
  /** The cluster afterwards, as this run left it. */
  topology: {
    primarySite: string;
    primaryNode: string;
    /** Former primaries that must be rebuilt as standbys (`switchyard rejoin`) before they serve again. */
    needsRejoin: { node: string; site: string; reason: string }[];
  };
  /** For an aborted run: why, and what state the cluster was left in. */
  abortedBecause: string | null;
  state: string;
  fenced: boolean;
  dataLoss: DataLoss | null;
  /** Bytes lost (dataLoss.bytes), at the top for dashboards; null when unknown or not promoted. */
  dataLostBytes: number | null;
  rto: {
    /** From the decision to promote until every traffic driver was verified on the new site. */
    fromDecisionSeconds: number | null;
    fromStartSeconds: number | null;
    /** From the decision until the front (the haproxy drivers) was verified on the new site; absent before they moved first. */
    frontFromDecisionSeconds?: number | null;
  };
  timeline: { before: number | null; after: number | null };
  checkpoints: CheckpointOutcome[];
  traffic: { driver: string; site: string | null; target: string | null; changed: boolean | undefined }[];
  hooks: { hook: string; exitCode: number | null; stdout: string; stderr: string }[];
  plan: PlanStep[];
  steps: StepRecord[];
}

export type LayoutNode = ClusterLayout['nodes'][number];

/** What the whole run knows from its start. */
export interface Ctx {
  input: FailoverInput;
  cluster: string;
  requestedBy: string;
  dryRun: boolean;
  reason: string | null;
  startedMs: number;
  steps: StepLog;
  layout: ClusterLayout;
  notify: (event: string, text: string) => Promise<unknown>;
  /** The FENCE_PATCH path. */
  v2: boolean;
  /** Staged by the watch (STAGED_PATCH); `automatic` only when the cluster's failover.automatic allows it too. */
  staged: { by: string; automatic: boolean; why: string } | null;
}

/** The site to promote: what the steps after promotion act on there. */
export interface NewSite {
  maintenance: ClusterLayout['maintenance'][number] | undefined;
  services: ClusterLayout['services'];
  hooks: ClusterLayout['hooks'];
}

/** The old site as reached at the start: which hosts answered over SSH. */
export interface OldSite {
  /** Activities bounded for a site that may be dead (activity-options.ts). */
  reach: ActivityInterfaceFor<Activities>;
  hosts: string[];
  hostOk: (host: string | null) => boolean;
  /** For the old-primary-dead prompt: each host and how it answered. */
  seen: (host: string) => string;
  maintenance: ClusterLayout['maintenance'][number] | undefined;
  services: ClusterLayout['services'];
}

/** A run before promotion: what it changed (undone in reverse order on an abort), tried and decided. */
export interface Attempt {
  old: LayoutNode;
  target: LayoutNode;
  /** `name (host:port)` of the old primary, for messages. */
  oldWhere: string;
  reach: ActivityInterfaceFor<Activities>;
  /** Activities to stop PostgreSQL with (fast, then immediate). */
  fenceActs: ActivityInterfaceFor<Activities>;
  /** The fence marker this run writes (FENCE_PATCH). */
  mark: { by: string; newPrimary: string; reason: string };
  checkpoints: Checkpoints;
  decisions: CheckpointOutcome[];
  undo: Undo[];
  tried: string[];
  fence: PgFenceResult | null;
  fenced: boolean;
  instanceStopped: boolean;
  /** A person approved old-primary-dead and what was seen afterwards agreed. */
  approvedDead: boolean;
}
