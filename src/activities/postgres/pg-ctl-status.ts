/**
 * Whether PostgreSQL runs on a node, as pg_ctl status says (pointed where pg_ctl is always pointed:
 * configDir, Debian layout), optionally with whether its data directory exists; and the refusal
 * of an action that needs it stopped. Used by the lifecycle, rejoin and restore activities.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { DbNodeConfig } from '../../topology/schema';
import type { RemoteCommandResult } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { brief, execArgv, type OpenSession } from '../ssh/exec';
import { inCLocale, shellScript } from '../ssh/argv';
import { pgCtlDir, pgTool } from './paths';
import { nodeWhere } from './shared';

export interface PgCtlStatus {
  /** true: running (exit 0); false: no server running (exit 3, or no data directory at all); null: cannot tell. */
  running: boolean | null;
  text: string;
}

export interface PgCtlDataDirStatus extends PgCtlStatus {
  dataDirExists: boolean;
}

/** How a command is run: execArgv, or a variant that reports a broken session as a result. */
export type RunCommand = (open: OpenSession, argv: string[], timeoutSeconds: number) => Promise<RemoteCommandResult>;

const statusArgv = (n: DbNodeConfig) => inCLocale([pgTool(n, 'pg_ctl'), 'status', '-D', pgCtlDir(n)]);

function fromExit(r: RemoteCommandResult): PgCtlStatus {
  if (r.exitCode === 0) return { running: true, text: `running (${r.stdout.trim().split('\n')[0] || 'exit 0'})` };
  if (r.exitCode === 3) return { running: false, text: 'no server running' };
  return { running: null, text: `unknown: ${brief(r)}` };
}

/** pg_ctl status alone: exit 0 runs, exit 3 stopped, anything else (a missing data directory too) cannot tell. */
export async function pgCtlStatus(open: OpenSession, n: DbNodeConfig, run: RunCommand = execArgv): Promise<PgCtlStatus> {
  return fromExit(await run(open, statusArgv(n), 30));
}

/**
 * pg_ctl status and whether the data directory exists (a missing one is "not running").
 * checkPostmasterPid: a "stopped" answer is checked against postmaster.pid, whose live process
 * means it runs after all.
 */
export async function pgCtlDataDirStatus(open: OpenSession, n: DbNodeConfig, opts: { checkPostmasterPid?: boolean } = {}): Promise<PgCtlDataDirStatus> {
  const r = await execArgv(open, statusArgv(n), 30);
  const dataDirExists = (await execArgv(open, ['test', '-e', n.dataDir], 15)).exitCode === 0;
  if (r.exitCode === 3 && opts.checkPostmasterPid) {
    // pg_ctl says no server runs; a postmaster.pid whose process is alive would still say otherwise.
    const pid = await execArgv(open, shellScript('p="$1/postmaster.pid"; [ -f "$p" ] && kill -0 "$(head -n 1 "$p")" 2>/dev/null', n.dataDir), 15);
    if (pid.exitCode === 0)
      return { running: true, dataDirExists, text: `pg_ctl status says stopped, but the process in ${n.dataDir}/postmaster.pid is alive` };
  }
  // pg_ctl exits 4 when the data directory is missing: nothing can run there.
  if (r.exitCode === 4 && !dataDirExists) return { running: false, dataDirExists, text: `no data directory at ${n.dataDir}` };
  return { ...fromExit(r), dataDirExists };
}

/** The refusal (WrongRole, not retried) of an action that needs the node stopped. */
export function wrongRoleRunning(node: string, n: DbNodeConfig, st: PgCtlStatus, doing: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${nodeWhere(node, n)} is running (pg_ctl status: ${st.text}): stop it first (pgFence) before ${doing}`,
    Errors.WrongRole,
  );
}
