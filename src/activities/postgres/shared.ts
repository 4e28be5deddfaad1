/**
 * Small helpers the PostgreSQL activities share: how a node is named in messages, two distinct
 * nodes of a cluster, the error an action throws when its connection or query failed, a query
 * row's values, and the tail of a PostgreSQL tool's output.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { DbNodeConfig } from '../../topology/schema';
import { errorMessage } from '../activity-context';
import { configError } from '../resolver';
import type { Call } from '../runtime';
import { Errors } from '../../contract/errors';
import { isAuthFailure } from './connect';

/** "name (host:port)", as messages name a node. */
export const nodeWhere = (node: string, n: DbNodeConfig): string => `${node} (${n.host}:${n.port})`;

/** Two different nodes of a cluster: the one acted on and its `role` (source, primary). */
export function twoNodes(call: Call, cluster: string, a: string, b: string, role: string): [DbNodeConfig, DbNodeConfig] {
  const na = call.top.node(cluster, a);
  const nb = call.top.node(cluster, b);
  if (a === b) throw configError(`node "${a}" cannot be its own ${role}`);
  return [na, nb];
}

/** As thrown from an action: a refused login is not fixed by retrying, a refused connection may be. */
export function pgActionError(err: unknown, doing: string): Error {
  if (err instanceof ApplicationFailure) return err;
  const msg = `${doing} failed: ${errorMessage(err)}`;
  return isAuthFailure(err) ? ApplicationFailure.nonRetryable(msg, Errors.ConfigError) : new Error(msg);
}

/** A column's value as text; SQL NULL (or a missing column) as null. */
export const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A column's value as a number; SQL NULL (or a missing column) as null. */
export const numberOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

const PROGRESS_RE = /^\s*\d+\/\d+ kB \(\d+%\)/;

/** The last `max` lines of a tool's output, with its progress lines collapsed to the last one. */
export function outputTail(text: string, max = 40): string {
  const lines = text.split(/\r\n|\r|\n/).filter((l) => l.trim() !== '');
  const lastProgress = lines.reduce((acc, l, i) => (PROGRESS_RE.test(l) ? i : acc), -1);
  const kept = lines.filter((l, i) => !PROGRESS_RE.test(l) || i === lastProgress);
  return kept.slice(-max).join('\n');
}
