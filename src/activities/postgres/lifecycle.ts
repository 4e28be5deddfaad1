/**
 * PostgreSQL's lifecycle on a node's host: pg_controldata, fencing (pg_ctl stop, fast then
 * immediate, confirmed by pg_ctl status and a refused connection), starting it again, and
 * promotion through pg_promote(). Commands are argument vectors run over SSH with the helpers of
 * ssh/exec.ts; connections use connect.ts's client config. Reads and the fence report the
 * target's state as data; start and promote throw (retryably) when their outcome is not reached.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { DbNodeConfig } from '../../topology/schema';
import { cancellationSignal, errorMessage, heartbeat, pollUntil } from '../activity-context';
import { configError } from '../resolver';
import type { Call, PgClientLike, Runtime } from '../runtime';
import { disableBootService, markFenced } from './fence';
import { CHECKPOINT_TLI_SQL, timelineOf, WAL_TLI_SQL } from './status';
import { isAuthFailure, isServerError, pgClientConfig, unreachableKind, withPgClient } from './connect';
import { brief, execArgv, SshConnectError, withHost, type OpenSession } from '../ssh/exec';
import { commandLine } from '../ssh/quote';
import type { PgControlData, PgFenceResult, PgPromoteResult, PgStartResult, RemoteCommandResult } from '../../contract/observations';
import { LSN_RE } from '../../contract/lsn';
import { Errors } from '../../contract/errors';
import { inCLocale, shellScript } from '../ssh/argv';
import { pgCtlDir, pgTool } from './paths';
import { pgCtlStatus } from './pg-ctl-status';
import { nodeWhere, numberOrNull, textOrNull } from './shared';

const DEFAULT_FAST_TIMEOUT_SECONDS = 20;
const IMMEDIATE_TIMEOUT_SECONDS = 30;
const START_TIMEOUT_SECONDS = 60;
const DEFAULT_PROMOTE_WAIT_SECONDS = 60;
/**
 * A fast stop (pg_ctl stop -m fast -W), then up to $6 checks 10 ms apart that postmaster.pid ($5)
 * is gone: exit 0 once it is, 1 if it is still there. $1-$3: env LC_ALL=C pg_ctl; $4: its -D dir.
 */
const STOP_FAST_SH = `"$1" "$2" "$3" stop -D "$4" -m fast -W || exit $?
pidfile=$5; tries=$6; i=0
while [ -f "$pidfile" ]; do
  [ "$i" -ge "$tries" ] && { echo "still running after $tries checks" >&2; exit 1; }
  sleep 0.01; i=$((i + 1))
done
echo "server stopped"`;

/** How often a promotion in progress is checked (pg_is_in_recovery on the open connection). */
const PROMOTE_POLL_MS = 10;

/** Extra time an exec gets over pg_ctl's own -t, so pg_ctl reports its timeout rather than us. */
const EXEC_MARGIN_SECONDS = 15;

// ---------------------------------------------------------------------------------------------
// pg_controldata

export type ControlFields = Omit<PgControlData, 'node' | 'ok' | 'detail'>;

/** The fields switchyard uses from pg_controldata's output (run with LC_ALL=C). */
export function parseControlData(text: string): ControlFields {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    // "Key: value"; keys have no colon, values may ("pg_control last modified: … 07:40:45 …").
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  const text_ = (k: string) => {
    const v = fields.get(k);
    return v === undefined || v === '' ? null : v;
  };
  const lsn = (k: string) => {
    const v = text_(k);
    return v !== null && LSN_RE.test(v) ? v : null;
  };
  const tli = text_("Latest checkpoint's TimeLineID");
  return {
    state: text_('Database cluster state'),
    checkpointLsn: lsn('Latest checkpoint location'),
    redoLsn: lsn("Latest checkpoint's REDO location"),
    timeline: tli !== null && /^\d+$/.test(tli) ? Number(tli) : null,
    minRecoveryEndLsn: lsn('Minimum recovery ending location'),
    systemIdentifier: text_('Database system identifier'),
  };
}

function noControl(node: string, detail: string): PgControlData {
  return { node, ok: false, state: null, checkpointLsn: null, redoLsn: null, timeline: null, minRecoveryEndLsn: null, systemIdentifier: null, detail };
}

// ---------------------------------------------------------------------------------------------
// Commands on the node's host

/** Where pg_ctl writes the server's log unless the node names a logFile. */
export const defaultLogFile = (n: DbNodeConfig) => n.logFile ?? posix.join(pgCtlDir(n), 'switchyard-pg.log');

/**
 * Run a command; a session that breaks under it (the host going down mid-fence) is reported as
 * a result with no exit code rather than thrown. Cancellation and configuration errors still throw.
 */
async function tryExec(open: OpenSession, argv: string[], timeoutSeconds: number): Promise<RemoteCommandResult> {
  try {
    return await execArgv(open, argv, timeoutSeconds);
  } catch (err) {
    if (cancellationSignal()?.aborted || err instanceof ApplicationFailure) throw err;
    return { host: open.name, command: commandLine(argv), exitCode: null, signal: null, stdout: '', stderr: `could not run: ${errorMessage(err)}` };
  }
}

async function readControl(open: OpenSession, node: string, n: DbNodeConfig): Promise<PgControlData> {
  const r = await tryExec(open, inCLocale([pgTool(n, 'pg_controldata'), '-D', n.dataDir]), 30);
  if (r.exitCode !== 0) return noControl(node, `pg_controldata -D ${n.dataDir} on ${open.name} ${brief(r)}`);
  const f = parseControlData(r.stdout);
  if (f.state === null) return noControl(node, `pg_controldata -D ${n.dataDir} on ${open.name} printed no "Database cluster state"`);
  return {
    node,
    ok: true,
    ...f,
    detail: `${f.state}; latest checkpoint ${f.checkpointLsn ?? '?'} (redo ${f.redoLsn ?? '?'}) on timeline ${f.timeline ?? '?'}`,
  };
}

/** Host-key and authentication problems are for a person; anything else means "cannot reach". */
function rethrowUnlessUnreachable(err: unknown): asserts err is SshConnectError {
  if (!(err instanceof SshConnectError)) throw err;
  if (err.outcome === 'host-key-mismatch' || err.outcome === 'auth-failed') throw err.toActionError();
}

// ---------------------------------------------------------------------------------------------
// Connection attempts

interface ConnAttempt {
  /** A session was made and answered SELECT 1. */
  connected: boolean;
  /**
   * Nothing listens there: the connection was refused. Not a timeout (a silent or frozen host is
   * not "refused"), not a server that answers (starting up, shutting down, a refused login).
   */
  refused: boolean;
  /** The server answered and refused the login: it runs, but these credentials will not do. */
  authFailed: boolean;
  detail: string;
}

// ---------------------------------------------------------------------------------------------

export function pgctlActivities(rt: Runtime) {
  const tryConnect = async (call: Call, cluster: string, node: string): Promise<ConnAttempt> => {
    const n = call.top.node(cluster, node);
    const at = `${n.host}:${n.port}`;
    const client = rt.pgClient(await pgClientConfig(rt, call, cluster, node));
    client.on?.('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return { connected: true, refused: false, authFailed: false, detail: `PostgreSQL at ${at} accepts connections` };
    } catch (err) {
      const msg = errorMessage(err);
      if (isAuthFailure(err))
        return { connected: false, refused: false, authFailed: true, detail: `PostgreSQL at ${at} answers but refused the login: ${msg}` };
      // A server that answers (starting up, shutting down, an error) is not down: fail closed.
      if (isServerError(err)) return { connected: false, refused: false, authFailed: false, detail: `PostgreSQL at ${at} answers: ${msg}` };
      const h = call.top.host(cluster, n.sshHost);
      const kind = await unreachableKind(rt, err, n.host, n.port, { host: h.address, port: h.port });
      if (kind === 'refused') return { connected: false, refused: true, authFailed: false, detail: `nothing accepts connections at ${at}: ${msg}` };
      return {
        connected: false,
        refused: false,
        authFailed: false,
        detail:
          kind === 'no-answer'
            ? `nothing answers at ${at} (${msg}): it may be down or cut off, which is not the same as stopped`
            : `${at} accepts TCP connections but PostgreSQL does not answer (${msg}): it may be frozen or hung`,
      };
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  const positionOf = async (client: PgClientLike): Promise<{ timeline: number | null; lsn: string | null }> => {
    const [r] = (await client.query(`SELECT ${CHECKPOINT_TLI_SQL} AS checkpoint_tli, ${WAL_TLI_SQL} AS wal_tli, pg_current_wal_lsn()::text AS lsn`)).rows;
    return { timeline: timelineOf(numberOrNull(r.checkpoint_tli), numberOrNull(r.wal_tli)), lsn: textOrNull(r.lsn) };
  };

  const positiveInt = (v: unknown, name: string, fallback: number, max: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
      throw configError(`${name} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
    return v;
  };

  return {
    /**
     * pg_controldata of a node's data directory, over SSH on its host. An unreachable host or a
     * failing command is data (ok:false); host-key, authentication and config problems throw.
     */
    pgControlData: rt.activity(async (input: { cluster: string; node: string }, call): Promise<PgControlData> => {
      const n = call.top.node(input.cluster, input.node);
      try {
        return await withHost(rt, call, input.cluster, n.sshHost, (open) => readControl(open, input.node, n));
      } catch (err) {
        rethrowUnlessUnreachable(err);
        return noControl(input.node, err.message);
      }
    }),

    /**
     * Fence a node: check then act. pg_ctl status; when it runs, pg_ctl stop -m fast (bounded by
     * fastTimeoutSeconds), and -m immediate when it still runs; then pg_ctl status again, a
     * connection attempt and pg_controldata. Never throws for the target's state: an unreachable
     * host gives sshReachable:false and fenced:false (the connection attempt still says whether
     * PostgreSQL answers). A second call on a stopped node returns fenced:true, changed:false.
     */
    pgFence: rt.activity(
      async (
        input: { cluster: string; node: string; fastTimeoutSeconds?: number; mark?: { by: string; newPrimary: string; reason?: string } },
        call,
      ): Promise<PgFenceResult> => {
        const n = call.top.node(input.cluster, input.node);
        const fastT = positiveInt(input.fastTimeoutSeconds, 'fastTimeoutSeconds', DEFAULT_FAST_TIMEOUT_SECONDS, 3600);
        const dir = pgCtlDir(n);
        const pgCtl = (args: string[]) => inCLocale([pgTool(n, 'pg_ctl'), ...args]);
        const steps: string[] = [];
        const res: PgFenceResult = {
          node: input.node,
          host: n.sshHost,
          sshReachable: false,
          wasRunning: null,
          stoppedWith: null,
          stopped: false,
          refusesConnections: false,
          fenced: false,
          changed: false,
          marked: input.mark ? false : null,
          serviceDisabled: null,
          control: null,
          steps,
          detail: '',
        };
        // Set inside the SSH session when there is one, else after it.
        const seen: { conn: ConnAttempt | null } = { conn: null };
        try {
          await withHost(rt, call, input.cluster, n.sshHost, async (open) => {
            res.sshReachable = true;
            const before = await pgCtlStatus(open, n, tryExec);
            steps.push(`pg_ctl status on ${n.sshHost}: ${before.text}`);
            res.wasRunning = before.running;
            let last = before;
            // Read beside pg_ctl status once the fast stop reported the server gone: used only if
            // pg_ctl status agrees (the connection attempt and the control file are read again otherwise).
            let verified: { conn: ConnAttempt; control: PgControlData } | null = null;
            // Unknown counts as running: trying to stop costs nothing, leaving a primary up costs a split.
            if (before.running !== false) {
              heartbeat({ node: input.node, step: 'stop fast' });
              // pg_ctl stop -w looks every 100 ms whether the server is gone; this signals (-W) and
              // looks every 10 ms for postmaster.pid, which the postmaster removes as it exits, so the
              // standby is promoted sooner. pg_ctl status below is still what decides.
              const fast = await tryExec(
                open,
                shellScript(STOP_FAST_SH, ...inCLocale([pgTool(n, 'pg_ctl')]), dir, posix.join(n.dataDir, 'postmaster.pid'), String(fastT * 100)),
                fastT + EXEC_MARGIN_SECONDS,
              );
              steps.push(`pg_ctl stop -m fast, waiting up to ${fastT} s: ${brief(fast)}`);
              if (fast.exitCode === 0) {
                const [st, conn, control] = await Promise.all([
                  pgCtlStatus(open, n, tryExec),
                  tryConnect(call, input.cluster, input.node),
                  readControl(open, input.node, n),
                ]);
                last = st;
                if (st.running === false) verified = { conn, control };
              } else last = await pgCtlStatus(open, n, tryExec);
              steps.push(`pg_ctl status: ${last.text}`);
              if (last.running === false) {
                if (before.running === true || fast.exitCode === 0) res.stoppedWith = 'fast';
              } else {
                heartbeat({ node: input.node, step: 'stop immediate' });
                const imm = await tryExec(
                  open,
                  pgCtl(['stop', '-D', dir, '-m', 'immediate', '-w', '-t', String(IMMEDIATE_TIMEOUT_SECONDS)]),
                  IMMEDIATE_TIMEOUT_SECONDS + EXEC_MARGIN_SECONDS,
                );
                steps.push(`pg_ctl stop -m immediate -t ${IMMEDIATE_TIMEOUT_SECONDS}: ${brief(imm)}`);
                last = await pgCtlStatus(open, n, tryExec);
                steps.push(`pg_ctl status: ${last.text}`);
                if (last.running === false) res.stoppedWith = 'immediate';
              }
              res.changed = before.running === true || res.stoppedWith !== null;
              if (res.stoppedWith) rt.log.info(`PostgreSQL stopped (${res.stoppedWith})`, { cluster: input.cluster, node: input.node, host: n.sshHost });
            }
            res.stopped = last.running === false;
            heartbeat({ node: input.node, step: 'verify' });
            seen.conn = verified?.conn ?? (await tryConnect(call, input.cluster, input.node));
            steps.push(seen.conn.detail);
            res.control = verified?.control ?? (await readControl(open, input.node, n));
            steps.push(`pg_controldata: ${res.control.detail}`);
            // Make it last: a restart (a reboot, `sandbox up`, a package upgrade) comes up read-only.
            if (input.mark && res.stopped) {
              heartbeat({ node: input.node, step: 'mark' });
              try {
                steps.push(
                  await markFenced(open, n, {
                    fencedBy: input.mark.by,
                    newPrimary: input.mark.newPrimary,
                    at: rt.now().toISOString(),
                    reason: input.mark.reason ?? '',
                  }),
                );
                res.marked = true;
              } catch (err) {
                if (err instanceof ApplicationFailure) throw err;
                steps.push(`marking the fence failed: ${errorMessage(err)}: a restart would make it a primary again`);
              }
              const svc = await disableBootService(open, n);
              res.serviceDisabled = svc.disabled;
              steps.push(svc.detail);
            }
          });
        } catch (err) {
          rethrowUnlessUnreachable(err);
          steps.push(`${err.message}: PostgreSQL cannot be stopped from here`);
        }
        let conn = seen.conn;
        if (conn === null) {
          conn = await tryConnect(call, input.cluster, input.node);
          steps.push(conn.detail);
        }
        res.refusesConnections = conn.refused;
        res.fenced = res.stopped && res.refusesConnections;

        const w = nodeWhere(input.node, n);
        const control = res.control?.ok ? `; control file: ${res.control.detail}` : '';
        if (res.fenced) {
          const how = res.stoppedWith ? `stopped with pg_ctl stop -m ${res.stoppedWith}` : res.wasRunning === false ? 'was already stopped' : 'is stopped';
          const lasting =
            res.marked === null
              ? ''
              : res.marked
                ? '; marked (standby.signal + fence marker): a restart comes up read-only'
                : '; NOT marked: a restart would make it a primary again';
          res.detail = `${w} is fenced: ${how}; ${conn.detail}${control}${lasting}`;
        } else {
          const why: string[] = [];
          if (!res.sshReachable) why.push(`its host ${n.sshHost} cannot be reached over SSH`);
          else if (!res.stopped)
            why.push(
              `pg_ctl status still reports it ${res.wasRunning === null ? 'in an unknown state' : 'running'} ` +
                `after ${res.stoppedWith === null && res.wasRunning !== false ? 'fast and immediate stops' : 'the stop'}`,
            );
          if (!res.refusesConnections) why.push(conn.detail);
          res.detail = `${w} is NOT fenced: ${why.join('; ')}${control}`;
        }
        return res;
      },
    ),

    /**
     * Start PostgreSQL on a node unless pg_ctl status says it runs (pg_ctl start -l <logFile>),
     * then wait until it accepts connections (bounded by verifyMs). Throws a retryable error with
     * the last lines of the log when it does not come up. Undoes a fence (an aborted failover).
     */
    pgStart: rt.activity(async (input: { cluster: string; node: string }, call): Promise<PgStartResult> => {
      const n = call.top.node(input.cluster, input.node);
      const dir = pgCtlDir(n);
      const logFile = defaultLogFile(n);
      const w = nodeWhere(input.node, n);
      const logTail = async (open: OpenSession): Promise<string> => {
        const r = await tryExec(open, ['tail', '-n', '20', logFile], 15);
        return r.exitCode === 0 && r.stdout.trim()
          ? `\n--- last lines of ${logFile} on ${open.name} ---\n${r.stdout.trimEnd()}`
          : `\n(${logFile} on ${open.name}: tail ${brief(r)})`;
      };
      try {
        return await withHost(rt, call, input.cluster, n.sshHost, async (open) => {
          const before = await pgCtlStatus(open, n, tryExec);
          let changed = false;
          let started = '';
          if (before.running !== true) {
            // No LC_ALL here: the postmaster inherits this environment, and its output is not parsed.
            const r = await execArgv(
              open,
              [pgTool(n, 'pg_ctl'), 'start', '-D', dir, '-l', logFile, '-w', '-t', String(START_TIMEOUT_SECONDS)],
              START_TIMEOUT_SECONDS + EXEC_MARGIN_SECONDS,
            );
            changed = true;
            started = `pg_ctl start ${brief(r)}`;
            if (r.exitCode !== 0) {
              const after = await pgCtlStatus(open, n, tryExec);
              if (after.running !== true) throw new Error(`PostgreSQL on ${w} did not start: ${started}; pg_ctl status: ${after.text}${await logTail(open)}`);
            }
            rt.log.info('PostgreSQL started', { cluster: input.cluster, node: input.node, host: n.sshHost });
          }
          const conn = await pollUntil(
            () => tryConnect(call, input.cluster, input.node),
            (a) => a.connected || a.authFailed,
            rt.timeouts.verifyMs,
            500,
          );
          if (conn.authFailed)
            throw ApplicationFailure.nonRetryable(`PostgreSQL on ${w} runs, but switchyard cannot log in: ${conn.detail}`, Errors.ConfigError);
          if (!conn.connected) {
            const how = changed ? `after ${started}` : `although pg_ctl status says it runs (${before.text})`;
            throw new Error(`PostgreSQL on ${w} does not accept connections ${rt.timeouts.verifyMs / 1000} s ${how}: ${conn.detail}${await logTail(open)}`);
          }
          return {
            node: input.node,
            changed,
            running: true,
            detail: changed ? `started (pg_ctl start -l ${logFile}); ${conn.detail}` : `already running (pg_ctl status: ${before.text}); ${conn.detail}`,
          };
        });
      } catch (err) {
        throw err instanceof SshConnectError ? err.toActionError() : err;
      }
    }),

    /**
     * Promote a standby with pg_promote(false) and wait up to waitSeconds for it to leave recovery,
     * unless it is already out of recovery (then changed:false: a retried or resumed promotion
     * never promotes twice). A retryable error if it did not leave recovery; reports its timeline
     * and WAL position.
     */
    pgPromote: rt.activity(async (input: { cluster: string; node: string; waitSeconds?: number }, call): Promise<PgPromoteResult> => {
      const n = call.top.node(input.cluster, input.node);
      const wait = positiveInt(input.waitSeconds, 'waitSeconds', DEFAULT_PROMOTE_WAIT_SECONDS, 3600);
      const w = nodeWhere(input.node, n);
      const inRecovery = async (client: PgClientLike) => (await client.query('SELECT pg_is_in_recovery() AS rec')).rows[0]?.rec === true;
      try {
        return await withPgClient(rt, call, input.cluster, input.node, async (client): Promise<PgPromoteResult> => {
          if (!(await inRecovery(client))) {
            const pos = await positionOf(client);
            return {
              node: input.node,
              changed: false,
              ...pos,
              detail: `already primary on timeline ${pos.timeline ?? '?'} (at ${pos.lsn ?? '?'}): not promoted again`,
            };
          }
          // pg_promote(wait => true) checks every 100 ms whether recovery ended; asked not to wait,
          // it signals the promotion and this polls every 10 ms, so writes come back sooner.
          let answer: string;
          // Not signalled: nothing is promoting, so only verifyMs for a promotion already under way.
          let signalled = true;
          try {
            const [r] = (await client.query('SELECT pg_promote(false) AS promoted')).rows;
            signalled = r?.promoted === true;
            answer = signalled ? 'pg_promote signalled' : 'pg_promote returned false (the promotion could not be signalled)';
          } catch (err) {
            // 55000 "recovery is not in progress": it finished promoting between our check and the call.
            if ((err as { code?: unknown })?.code !== '55000') throw err;
            answer = `pg_promote found recovery already over (${errorMessage(err)})`;
          }
          const t0 = Date.now();
          const still = await pollUntil(
            () => inRecovery(client),
            (rec) => !rec,
            (signalled ? wait * 1000 : 0) + rt.timeouts.verifyMs,
            PROMOTE_POLL_MS,
          );
          if (still) throw new Error(`${w} is still in recovery ${Math.round((Date.now() - t0) / 1000)} s after promotion was asked for (${answer})`);
          answer += `; out of recovery after ${Date.now() - t0} ms`;
          const pos = await positionOf(client);
          rt.log.info('promoted', { cluster: input.cluster, node: input.node, timeline: pos.timeline, lsn: pos.lsn });
          return {
            node: input.node,
            changed: true,
            ...pos,
            detail: `promoted: out of recovery on timeline ${pos.timeline ?? '?'} at ${pos.lsn ?? '?'} (${answer})`,
          };
        });
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        const msg = `promoting ${w} of cluster "${input.cluster}" failed: ${errorMessage(err)}`;
        // 42501: the configured user may not call pg_promote (needs superuser or EXECUTE on it).
        const code = (err as { code?: unknown })?.code;
        throw isAuthFailure(err) || code === '42501' ? ApplicationFailure.nonRetryable(msg, Errors.ConfigError) : new Error(msg);
      }
    }),
  };
}
