/**
 * A fence that lasts (DESIGN.md 3a): what a failover leaves in a former primary's data directory
 * so that nothing undoes the fence by accident. `standby.signal` makes a restart (a reboot, `pg_ctl
 * start`, a package upgrade) come up in recovery, read-only; the marker `switchyard-fence.json`
 * says who fenced it, for whom and why, so readiness and a person know what to run (rejoin). The
 * node's boot service is disabled where the topology says how. And STONITH: the node's own power
 * control command, for when SSH cannot reach it.
 *
 * Only a failover (and the guard it starts) marks a node; rejoin clears the marker (and enables
 * the boot service again) when the node is a standby again, and an aborted failover clears its
 * own marker before it starts the old primary again.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { DbNodeConfig } from '../../topology/schema';
import { configError } from '../resolver';
import { errorMessage } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { brief, execArgv, mustExec, onHost, SshConnectError, withHost, type OpenSession } from '../ssh/exec';
import { writeFileAtomic } from '../ssh/files';
import { substitute } from '../ssh/quote';
import type { FenceMarker, FenceState, StonithResult } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { shellScript } from '../ssh/argv';

export const FENCE_MARKER = 'switchyard-fence.json';

/** Prints "standby.signal" when it exists, then "marker" and the marker's content when it exists; exit 3 without a data directory. */
const FENCE_READ_SH =
  'cd -- "$1" 2>/dev/null || exit 3; if [ -e standby.signal ]; then echo standby.signal; fi; if [ -f "$2" ]; then echo marker; cat -- "$2"; fi';
/** Creates an empty standby.signal (0600) unless one exists; prints "created" when it made one. */
const SIGNAL_SH = 'set -e; cd -- "$1"; if [ ! -e standby.signal ]; then umask 077; : > standby.signal; echo created; fi';
/** Removes the marker, and standby.signal when $3 is "signal-too". */
const CLEAR_SH = 'set -e; cd -- "$1"; rm -f -- "$2"; if [ "$3" = signal-too ]; then rm -f -- standby.signal; fi';

export function parseFenceRead(stdout: string): { standbySignal: boolean; marker: FenceMarker | null; problem: string | null } {
  const lines = stdout.split('\n');
  const standbySignal = lines[0] === 'standby.signal';
  const at = lines.indexOf('marker');
  if (at < 0) return { standbySignal, marker: null, problem: null };
  const text = lines
    .slice(at + 1)
    .join('\n')
    .trim();
  try {
    const m = JSON.parse(text) as Partial<FenceMarker>;
    if (typeof m.fencedBy !== 'string' || typeof m.newPrimary !== 'string' || typeof m.at !== 'string')
      throw new Error('fields fencedBy, newPrimary and at are required');
    return {
      standbySignal,
      marker: { fencedBy: m.fencedBy, newPrimary: m.newPrimary, at: m.at, reason: typeof m.reason === 'string' ? m.reason : '' },
      problem: null,
    };
  } catch (err) {
    // A marker that cannot be read still means "fenced": never read it as "not fenced".
    return {
      standbySignal,
      marker: { fencedBy: '?', newPrimary: '?', at: '?', reason: `unreadable marker: ${errorMessage(err)}` },
      problem: errorMessage(err),
    };
  }
}

export async function readFence(open: OpenSession, n: DbNodeConfig): Promise<{ dataDirExists: boolean; standbySignal: boolean; marker: FenceMarker | null }> {
  const r = await execArgv(open, shellScript(FENCE_READ_SH, n.dataDir, FENCE_MARKER), 30);
  if (r.exitCode === 3) return { dataDirExists: false, standbySignal: false, marker: null };
  if (r.exitCode !== 0) throw new Error(`reading the fence of ${n.dataDir} on ${open.name} ${brief(r)}`);
  return { dataDirExists: true, ...parseFenceRead(r.stdout) };
}

/**
 * standby.signal in a data directory unless it is there: a node being made a standby (rewound,
 * or freshly copied by pg_basebackup) must come up read-only if it is started before the rejoin
 * configures it (a reboot in between would otherwise start it as a primary). True when made.
 */
export async function ensureStandbySignal(open: OpenSession, n: DbNodeConfig): Promise<boolean> {
  const s = await mustExec(open, shellScript(SIGNAL_SH, n.dataDir), `writing standby.signal in ${n.dataDir}`);
  return s.stdout.includes('created');
}

/**
 * Make a stopped node's fence last: standby.signal (a restart comes up read-only) and the marker.
 * Check-then-act: a second call finds both and rewrites only the marker's content.
 */
export async function markFenced(open: OpenSession, n: DbNodeConfig, marker: FenceMarker): Promise<string> {
  const created = await ensureStandbySignal(open, n);
  await writeFileAtomic(open, posix.join(n.dataDir, FENCE_MARKER), Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), { mode: '600', makeParent: true });
  return (
    `${created ? 'wrote' : 'kept'} standby.signal and wrote ${FENCE_MARKER} (fenced by ${marker.fencedBy} for ${marker.newPrimary}) in ${n.dataDir}: ` +
    `a restart comes up read-only`
  );
}

/** Disable the node's boot service when the topology says how; null when it does not. */
export async function disableBootService(open: OpenSession, n: DbNodeConfig): Promise<{ disabled: boolean | null; detail: string }> {
  if (!n.service) return { disabled: null, detail: 'no boot service in the topology (postgres.nodes.<node>.service)' };
  const r = await execArgv(open, n.service.disable, 60);
  return r.exitCode === 0
    ? { disabled: true, detail: `boot service disabled (${r.command})` }
    : { disabled: false, detail: `disabling the boot service ${brief(r)}` };
}

export function fenceActivities(rt: Runtime) {
  return {
    /** What a node's data directory says about a fence. Never throws for an unreachable host (readable:false). */
    fenceRead: rt.activity(async (input: { cluster: string; node: string }, call: Call): Promise<FenceState> => {
      const n = call.top.node(input.cluster, input.node);
      try {
        return await withHost(rt, call, input.cluster, n.sshHost, async (open) => {
          const f = await readFence(open, n);
          const detail = !f.dataDirExists
            ? `${input.node} has no data directory at ${n.dataDir}`
            : f.marker
              ? `${input.node} is fenced: ${FENCE_MARKER} says fenced by ${f.marker.fencedBy} at ${f.marker.at} for ${f.marker.newPrimary}` +
                `${f.marker.reason ? ` (${f.marker.reason})` : ''}; standby.signal ${f.standbySignal ? 'present' : 'MISSING'}`
              : `${input.node} carries no fence marker${f.standbySignal ? ' (standby.signal present)' : ''}`;
          return { node: input.node, readable: true, marker: f.marker, standbySignal: f.dataDirExists ? f.standbySignal : null, detail };
        });
      } catch (err) {
        if (!(err instanceof SshConnectError) || err.outcome === 'host-key-mismatch' || err.outcome === 'auth-failed')
          throw err instanceof SshConnectError ? err.toActionError() : err;
        return { node: input.node, readable: false, marker: null, standbySignal: null, detail: `cannot read the fence of ${input.node}: ${err.message}` };
      }
    }),

    /**
     * Remove a node's fence marker. With `fencedBy`, only a marker that names that run is removed,
     * together with standby.signal (an aborted failover undoing its own fence); without it, the
     * marker alone (rejoin: the node is a standby now and keeps its standby.signal).
     */
    fenceClear: rt.activity(
      async (input: { cluster: string; node: string; fencedBy?: string }, call: Call): Promise<{ node: string; changed: boolean; detail: string }> => {
        const n = call.top.node(input.cluster, input.node);
        return onHost(rt, call, input.cluster, n.sshHost, async (open) => {
          const f = await readFence(open, n);
          if (!f.marker) {
            // pg_rewind removes the marker with the other files its source lacks; the boot service
            // a fence disabled is still enabled again once the node is a standby.
            if (input.fencedBy === undefined && n.service) {
              const svc = await execArgv(open, n.service.enable, 60);
              if (svc.exitCode !== 0) throw new Error(`enabling the boot service of ${input.node} ${brief(svc)}`);
              return { node: input.node, changed: false, detail: `${input.node} carries no fence marker; boot service enabled (${svc.command})` };
            }
            return { node: input.node, changed: false, detail: `${input.node} carries no fence marker` };
          }
          if (input.fencedBy !== undefined && f.marker.fencedBy !== input.fencedBy) {
            throw ApplicationFailure.nonRetryable(
              `${input.node} was fenced by ${f.marker.fencedBy}, not by ${input.fencedBy}: ` +
                `its fence is left in place (run \`switchyard rejoin ${input.cluster} --node ${input.node}\` to make it a standby)`,
              Errors.WrongRole,
            );
          }
          await mustExec(
            open,
            shellScript(CLEAR_SH, n.dataDir, FENCE_MARKER, input.fencedBy !== undefined ? 'signal-too' : 'marker-only'),
            `clearing the fence of ${n.dataDir}`,
          );
          // The boot service the fence disabled starts the node at boot again.
          const svc = n.service ? await execArgv(open, n.service.enable, 60) : null;
          if (svc && svc.exitCode !== 0) throw new Error(`the fence marker of ${input.node} was removed, but enabling its boot service ${brief(svc)}`);
          rt.log.info('fence cleared', { cluster: input.cluster, node: input.node, fencedBy: f.marker.fencedBy });
          return {
            node: input.node,
            changed: true,
            detail:
              `removed ${FENCE_MARKER}${input.fencedBy !== undefined ? ' and standby.signal' : ''} from ${n.dataDir} (fenced by ` +
              `${f.marker.fencedBy})${svc ? `; boot service enabled (${svc.command})` : ''}`,
          };
        });
      },
    ),

    /**
     * Run the node's STONITH command (postgres.nodes.<node>.stonith) on its host, once: exit 0
     * means the node is powered off. Non-zero exits and timeouts are returned (ok:false).
     */
    stonith: rt.activity(async (input: { cluster: string; node: string }, call: Call): Promise<StonithResult> => {
      const n = call.top.node(input.cluster, input.node);
      if (!n.stonith)
        throw configError(`database node "${input.node}" of cluster "${input.cluster}" has no STONITH command (postgres.nodes.${input.node}.stonith)`);
      const argv = substitute(n.stonith.command, { node: input.node, address: n.host, port: String(n.port) });
      const r = await onHost(rt, call, input.cluster, n.stonith.host, (open) => execArgv(open, argv, n.stonith!.timeoutSeconds));
      const ok = r.exitCode === 0;
      rt.log.warn(ok ? 'STONITH: node powered off' : 'STONITH failed', {
        cluster: input.cluster,
        node: input.node,
        host: n.stonith.host,
        exitCode: r.exitCode,
      });
      return {
        node: input.node,
        host: n.stonith.host,
        ok,
        exitCode: r.exitCode,
        timedOut: r.timedOut === true,
        detail: ok
          ? `STONITH of ${input.node} on ${n.stonith.host}: ${r.command} exited 0${r.stdout.trim() ? ` (${r.stdout.trim().slice(-200)})` : ''}`
          : `STONITH of ${input.node} on ${n.stonith.host} ${brief(r)}`,
      };
    }),
  };
}
