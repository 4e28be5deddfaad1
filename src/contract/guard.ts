/**
 * The guard's contract: what the failover tells it, what rejoin tells it, what anyone may ask it.
 * Shared by the guard workflow (src/workflows/guard.ts) and the activities that signal it
 * (src/activities/guard.ts), so neither imports the other.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';

/** One former primary the guard watches until rejoin makes it a standby. */
export interface GuardWatch {
  node: string;
  /** The node promoted in its place. */
  newPrimary: string;
  /** The failover that fenced it. */
  fencedBy: string;
  /** ISO time the watch began. */
  since: string;
}

export interface GuardRelease {
  node: string;
  /** Who ends the watch (a rejoin's workflow id), for the log. */
  by: string;
  reason: string;
}

/** Something the guard did or saw that a person should know. */
export interface GuardEvent {
  at: string;
  node: string;
  kind: 'watching' | 'returned-as-primary' | 'fenced-again' | 'fence-failed' | 'rejoined' | 'released' | 'legitimate-primary';
  detail: string;
}

export interface GuardStatus {
  cluster: string;
  watching: (GuardWatch & { lastSeen: string | null; lastCheckAt: string | null })[];
  intervalSeconds: number;
  checks: number;
  /** The newest events first, at most 50 (carried over continue-as-new). */
  events: GuardEvent[];
}

export function guardWorkflowId(cluster: string): string {
  return `switchyard-guard-${cluster}`;
}

export const guardWatchSignal = defineSignal<[GuardWatch]>('watch');
export const guardReleaseSignal = defineSignal<[GuardRelease]>('release');
export const guardStatusQuery = defineQuery<GuardStatus>('guardStatus');
