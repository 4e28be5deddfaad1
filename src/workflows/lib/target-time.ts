/**
 * A point in time a drill or a restore replays to, as the workflows take it: an ISO time,
 * normalised (UTC, milliseconds); a ConfigError naming the input otherwise.
 */
import { ApplicationFailure } from '@temporalio/workflow';

export function checkTargetTime(v: unknown, what = '"targetTime"'): string {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  if (Number.isNaN(t))
    throw ApplicationFailure.nonRetryable(`${what} must be an ISO time such as "2026-12-04T03:15:00Z", got ${JSON.stringify(v)}`, 'ConfigError');
  return new Date(t).toISOString();
}
