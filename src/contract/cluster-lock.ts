/**
 * The cluster lock's contract: who holds it, the updates that take and give it back, the query
 * that reads it. Shared by the lock workflow (src/workflows/cluster-lock.ts) and the activities
 * that call it (src/activities/lock.ts), so neither imports the other.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';

export interface LockHolder {
  workflowId: string;
  /** The run that took the lock (or that took it again: a reset run of it). */
  runId: string;
  /** The first run of the holder's execution chain; absent on holders recorded before it existed. */
  firstExecutionRunId?: string;
  operation: string;
  requestedBy?: string;
  /** ISO time (lock workflow clock) the lock was granted. */
  since: string;
}

export interface AcquireRequest {
  workflowId: string;
  runId: string;
  /** workflowInfo().firstExecutionRunId of the requesting run. */
  firstExecutionRunId?: string;
  operation: string;
  requestedBy?: string;
}

export interface AcquireResult {
  granted: boolean;
  /** The holder after the request: the requester when granted, the one in the way when refused. */
  holder: LockHolder | null;
}

export interface ReleaseRequest {
  workflowId: string;
  runId: string;
  /** workflowInfo().firstExecutionRunId of the releasing run (for forceRelease: of the stale holder). */
  firstExecutionRunId?: string;
}

export interface ForceReleaseRequest extends ReleaseRequest {
  /** Why, for the log: e.g. "holder is TERMINATED". */
  reason: string;
}

export interface ReleaseResult {
  released: boolean;
  /** The holder after the request. */
  holder: LockHolder | null;
}

export interface ClusterLockInput {
  cluster: string;
  /** Carried over continue-as-new. */
  holder?: LockHolder | null;
  /** End the workflow after this long free with no requests. Default 600. */
  idleSeconds?: number;
  /** Continue as new after this many requests in one run (or when the server suggests it). Default 500. */
  maxRequestsPerRun?: number;
}

export const acquireUpdate = defineUpdate<AcquireResult, [AcquireRequest]>('acquire');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const forceReleaseUpdate = defineUpdate<ReleaseResult, [ForceReleaseRequest]>('forceRelease');
export const holderQuery = defineQuery<LockHolder | null>('holder');

export function lockWorkflowId(cluster: string): string {
  return `switchyard-lock-${cluster}`;
}

/** The first run of an execution chain: recorded, else (a holder or request from before) its run. */
export function chainOf(x: { runId: string; firstExecutionRunId?: string }): string {
  return x.firstExecutionRunId || x.runId;
}

/** The same holder: the same workflow id and the same run, or the same execution chain (a reset run). */
export function sameHolder(h: LockHolder | null, r: ReleaseRequest): boolean {
  return h !== null && h.workflowId === r.workflowId && (h.runId === r.runId || chainOf(h) === chainOf(r));
}

/** The lock workflow's signature, for a typed start from outside (the workflow's own input). */
export type ClusterLockWorkflow = (input: ClusterLockInput) => Promise<void>;
