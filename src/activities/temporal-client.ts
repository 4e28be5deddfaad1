/**
 * What the activities that talk to other workflows share (the cluster lock, the guard, earlier
 * readiness runs): the worker's Temporal client, and the task queue they start workflows on.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { configError } from './resolver';
import type { Runtime } from './runtime';

/** The worker's Temporal client; a ConfigError saying what cannot be done without one. */
export function temporalClient(rt: Runtime, cannot: string): Client {
  const c = rt.deps.temporal?.();
  if (!c) throw configError(`this worker has no Temporal client (ActivityDeps.temporal), so it cannot ${cannot}`);
  return c;
}

/** The task queue of the calling activity; outside one (unit use), the worker's default. */
export function currentTaskQueue(): string {
  try {
    return Context.current().info.taskQueue;
  } catch {
    return 'switchyard';
  }
}
