/**
 * What an activity has around it, with or without a Temporal activity context: heartbeats,
 * cancellation and request signals, a logger, who is acting, and small waits (sleep, pollUntil).
 */
import { Context } from '@temporalio/activity';

export function inActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeat when running as an activity; a no-op for plain function calls (unit tests). */
export function heartbeat(details?: unknown): void {
  inActivity()?.heartbeat(details);
}

/** The activity's cancellation signal, if any. */
export function cancellationSignal(): AbortSignal | undefined {
  return inActivity()?.cancellationSignal;
}

/** For one HTTP request: aborted at its timeout, or when the activity is cancelled. */
export function requestSignal(timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  const cancelled = cancellationSignal();
  return cancelled ? AbortSignal.any([timeout, cancelled]) : timeout;
}

export interface ActivityLogger {
  info(message: string, attrs?: Record<string, unknown>): void;
  warn(message: string, attrs?: Record<string, unknown>): void;
}

/** Logs through the activity context's logger (which carries workflow id and activity info). */
export function contextLogger(fallback?: ActivityLogger): ActivityLogger {
  return {
    info: (m, a) => {
      const ctx = inActivity();
      if (ctx) ctx.log.info(m, a);
      else fallback?.info(m, a);
    },
    warn: (m, a) => {
      const ctx = inActivity();
      if (ctx) ctx.log.warn(m, a);
      else fallback?.warn(m, a);
    },
  };
}

/** Who is acting, for audit rows: the workflow id when running as an activity. */
export function actor(): string {
  const ctx = inActivity();
  const wf = ctx?.info.workflowExecution?.workflowId;
  return wf ? `switchyard:${wf}` : 'switchyard';
}

export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(errorMessage).join('; ');
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const base = err.message || err.name;
    if (cause instanceof Error && cause.message && !base.includes(cause.message)) return `${base}: ${errorMessage(cause)}`;
    return base;
  }
  return String(err);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sleep, ending early with a CancelledFailure when the activity is cancelled. */
export async function pause(ms: number): Promise<void> {
  const ctx = inActivity();
  if (ctx) await ctx.sleep(ms);
  else await sleep(ms);
}

/**
 * Poll `read` until `done` holds or `timeoutMs` passes; returns the last value read.
 * Heartbeats on every round so a long verification stays alive.
 */
export async function pollUntil<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number, intervalMs = 300): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v) || Date.now() >= deadline) return v;
    heartbeat();
    await sleep(intervalMs);
  }
}
