/**
 * A site's own commands over SSH: the connectivity check and one-off commands, its services
 * (stop, start, status), maintenance mode and the hooks run after a promotion.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ServiceConfig, SiteConfig } from '../topology/schema';
import { configError, type Resolver } from './resolver';
import { errorMessage, pollUntil, requestSignal } from './activity-context';
import type { Call, Runtime } from './runtime';
import { hookCheckTimeoutSeconds } from '../topology/hook-timeouts';
import type { HookRunResult, MaintenanceState, RemoteCommandResult, ServiceState, SshCheck } from '../contract/observations';
import { DEFAULT_COMMAND_TIMEOUT_SECONDS, SshConnectError, OpenSession, execArgv, withHost, runOnHost, onHost, brief } from './ssh/exec';

// ---------------------------------------------------------------------------------------------
// Activities

function serviceOf(top: Resolver, cluster: string, site: string, service: string): { s: SiteConfig; svc: ServiceConfig } {
  const s = top.site(cluster, site);
  if (!Object.prototype.hasOwnProperty.call(s.services, service)) {
    const known = Object.keys(s.services);
    throw configError(
      `unknown service ${JSON.stringify(service)} at site "${site}" of cluster "${cluster}"; known: ` +
        `${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'}`,
    );
  }
  return { s, svc: s.services[service] };
}

function hookOf(top: Resolver, cluster: string, site: string, hook: string): SiteConfig['hooks']['afterPromote'][number] {
  const hooks = top.site(cluster, site).hooks.afterPromote;
  const h = hooks.find((x) => x.name === hook);
  if (!h) {
    const known = hooks.map((x) => `"${x.name}"`);
    throw configError(
      `unknown hook ${JSON.stringify(hook)} in sites.${site}.hooks.afterPromote of cluster "${cluster}"; known: ${known.length ? known.join(', ') : 'none'}`,
    );
  }
  return h;
}

function maintenanceOf(top: Resolver, cluster: string, site: string): NonNullable<SiteConfig['maintenance']> {
  const s = top.site(cluster, site);
  if (!s.maintenance) throw configError(`site "${site}" of cluster "${cluster}" has no maintenance commands configured (sites.${site}.maintenance)`);
  return s.maintenance;
}

export function remoteActivities(rt: Runtime) {
  const verifyMs = rt.timeouts.verifyMs;

  /** Status of a service over an open session: exit 0 running, anything else stopped. */
  const readService = async (open: OpenSession, svc: ServiceConfig) => {
    const r = await execArgv(open, svc.status, 60);
    return { running: r.exitCode === 0, r };
  };

  const setService = async (call: Call, input: { cluster: string; site: string; service: string }, want: boolean): Promise<ServiceState> => {
    const { svc } = serviceOf(call.top, input.cluster, input.site, input.service);
    const base = { site: input.site, service: input.service, host: svc.host };
    const verb = want ? 'start' : 'stop';
    try {
      return await withHost(rt, call, input.cluster, svc.host, async (open) => {
        const before = await readService(open, svc);
        if (before.running === want) return { ...base, running: want, changed: false, detail: `already ${want ? 'running' : 'stopped'}` };
        const act = await execArgv(open, want ? svc.start : svc.stop, 120);
        const after = await pollUntil(
          () => readService(open, svc),
          (v) => v.running === want,
          verifyMs,
        );
        if (after.running !== want) {
          throw new Error(
            `service "${input.service}" at site "${input.site}" is still ${want ? 'stopped' : 'running'} after ${verb} (${verb} ` +
              `${brief(act)}; status ${brief(after.r)})`,
          );
        }
        rt.log.info(`service ${verb}ed`, { cluster: input.cluster, site: input.site, service: input.service, host: svc.host });
        return { ...base, running: want, changed: true, detail: `${verb} ${brief(act)}; status now ${want ? 'running' : 'stopped'}` };
      });
    } catch (err) {
      throw err instanceof SshConnectError ? err.toActionError() : err;
    }
  };

  const readMaintenanceCommand = async (
    call: Call,
    cluster: string,
    m: NonNullable<SiteConfig['maintenance']>,
  ): Promise<{ on: boolean | null; detail: string }> => {
    try {
      return await withHost(rt, call, cluster, m.host, async (open) => {
        const r = await execArgv(open, m.status, 60);
        return { on: r.exitCode === 0, detail: `status command on ${m.host} ${brief(r)}` };
      });
    } catch (err) {
      if (err instanceof SshConnectError) return { on: null, detail: err.message };
      throw err;
    }
  };

  const readHttp = async (url: string | undefined): Promise<{ httpStatus: number | null; detail: string }> => {
    if (!url) return { httpStatus: null, detail: 'no app URL configured' };
    try {
      const res = await rt.fetch(url, { method: 'GET', redirect: 'manual', signal: requestSignal(rt.timeouts.httpMs) });
      await res.body?.cancel().catch(() => undefined);
      return { httpStatus: res.status, detail: `app answers ${res.status}` };
    } catch (err) {
      return { httpStatus: null, detail: `app unreachable: ${errorMessage(err)}` };
    }
  };

  return {
    /**
     * Can the worker reach the host, with the pinned key, and run a command? Never throws for the
     * target's state. A login of its own unless `pooled` (the watch's probe every 30 s): then the
     * command runs as a failover's next one would, on the worker's connection to the host if it has
     * one (ssh/pool.ts: at most 10 min old, a fresh login when it fails).
     */
    sshCheck: rt.activity(async (input: { cluster: string; host: string; pooled?: boolean }, call): Promise<SshCheck> => {
      const host = call.top.host(input.cluster, input.host);
      const base = { host: input.host, site: host.site ?? null, address: host.address, port: host.port };
      try {
        return await withHost(
          rt,
          call,
          input.cluster,
          input.host,
          async (open) => {
            const r = await execArgv(open, ['uname', '-n'], 15);
            const ok = r.exitCode === 0;
            return {
              ...base,
              ok,
              outcome: ok ? 'ok' : 'error',
              detail: `key ${open.key.fingerprint} matches the pinned key; ${ok ? `uname -n: ${r.stdout.trim()}` : `uname -n ${brief(r)}`}`,
            };
          },
          { fresh: input.pooled !== true },
        );
      } catch (err) {
        if (err instanceof SshConnectError) return { ...base, ok: false, outcome: err.outcome, detail: err.message };
        if (err instanceof ApplicationFailure) throw err; // configuration, not the target's state
        return { ...base, ok: false, outcome: 'error', detail: errorMessage(err) };
      }
    }),

    /** Run one command (argv, quoted by ssh/quote.ts). Non-zero exit and timeouts are returned. */
    runRemote: rt.activity(async (input: { cluster: string; host: string; argv: string[]; timeoutSeconds?: number }, call): Promise<RemoteCommandResult> => {
      if (!Array.isArray(input.argv) || input.argv.length === 0 || !input.argv.every((a) => typeof a === 'string')) {
        throw configError('runRemote needs argv: a non-empty list of strings');
      }
      return runOnHost(rt, call, input.cluster, input.host, input.argv, input.timeoutSeconds ?? DEFAULT_COMMAND_TIMEOUT_SECONDS);
    }),

    /**
     * Run one afterPromote hook of a site (by name) on its host with its timeout. With a `check`
     * command, that runs first (bounded by hookCheckTimeoutSeconds): exit 0 means already done and
     * the command is not run (`alreadyDone`); a check that times out or is killed throws (whether
     * the hook ran cannot be told, so it is not run blind). Non-zero exits and timeouts of the
     * command are returned: the workflow judges.
     */
    runHook: rt.activity(async (input: { cluster: string; site: string; hook: string }, call): Promise<HookRunResult> => {
      const h = hookOf(call.top, input.cluster, input.site, input.hook);
      const base = { hook: h.name, site: input.site };
      return onHost(rt, call, input.cluster, h.host, async (open) => {
        if (h.check) {
          const checkSeconds = hookCheckTimeoutSeconds(h.timeoutSeconds);
          const c = await execArgv(open, h.check, checkSeconds, call.secrets);
          if (c.exitCode === 0) {
            rt.log.info('hook already done', { cluster: input.cluster, site: input.site, hook: h.name, host: h.host });
            return { ...c, ...base, alreadyDone: true };
          }
          if (c.exitCode === null) {
            throw new Error(
              `check command of hook "${h.name}" (sites.${input.site}.hooks.afterPromote) on ${h.host} ${brief(c)}: ` +
                `cannot tell whether the hook already ran, so it was not run`,
            );
          }
        }
        const r = await execArgv(open, h.command, h.timeoutSeconds, call.secrets);
        rt.log.info('hook ran', { cluster: input.cluster, site: input.site, hook: h.name, host: h.host, exitCode: r.exitCode, timedOut: r.timedOut ?? false });
        return { ...r, ...base, alreadyDone: false };
      });
    }),

    serviceStatus: rt.activity(async (input: { cluster: string; site: string; service: string }, call): Promise<ServiceState> => {
      const { svc } = serviceOf(call.top, input.cluster, input.site, input.service);
      const base = { site: input.site, service: input.service, host: svc.host };
      try {
        return await withHost(rt, call, input.cluster, svc.host, async (open) => {
          const { running, r } = await readService(open, svc);
          return { ...base, running, detail: `status ${brief(r)}` };
        });
      } catch (err) {
        if (err instanceof SshConnectError) return { ...base, running: null, detail: err.message };
        throw err;
      }
    }),

    /** Start a service unless it runs; verified by its status command afterwards. */
    serviceStart: rt.activity((input: { cluster: string; site: string; service: string }, call) => setService(call, input, true)),
    /** Stop a service unless it is stopped; verified by its status command afterwards. */
    serviceStop: rt.activity((input: { cluster: string; site: string; service: string }, call) => setService(call, input, false)),

    /** Maintenance flag by its status command, and the app's HTTP status. Never throws for the target's state. */
    maintenanceStatus: rt.activity(async (input: { cluster: string; site: string }, call): Promise<MaintenanceState> => {
      const s = call.top.site(input.cluster, input.site);
      const [cmd, http] = await Promise.all([
        s.maintenance
          ? readMaintenanceCommand(call, input.cluster, s.maintenance)
          : Promise.resolve({ on: null, detail: 'no maintenance commands configured' }),
        readHttp(s.app?.url),
      ]);
      return { site: input.site, on: cmd.on, httpStatus: http.httpStatus, detail: `${cmd.detail}; ${http.detail}` };
    }),

    /** Turn maintenance on or off unless it already is; verified by reading the status command back. */
    maintenanceSet: rt.activity(async (input: { cluster: string; site: string; on: boolean }, call): Promise<MaintenanceState> => {
      if (typeof input.on !== 'boolean') throw configError('maintenanceSet needs "on": true or false');
      const s = call.top.site(input.cluster, input.site);
      const m = maintenanceOf(call.top, input.cluster, input.site);
      const want = input.on;
      const word = want ? 'on' : 'off';
      let changed: boolean;
      let actDetail: string;
      try {
        ({ changed, actDetail } = await withHost(rt, call, input.cluster, m.host, async (open) => {
          const before = await execArgv(open, m.status, 60);
          if ((before.exitCode === 0) === want) return { changed: false, actDetail: `maintenance already ${word}` };
          const act = await execArgv(open, want ? m.on : m.off, 120);
          const after = await pollUntil(
            () => execArgv(open, m.status, 60),
            (r) => (r.exitCode === 0) === want,
            verifyMs,
          );
          if ((after.exitCode === 0) !== want) {
            throw new Error(
              `maintenance at site "${input.site}" still reads ${want ? 'off' : 'on'} after turning it ${word} (${word} command ` +
                `${brief(act)}; status ${brief(after)})`,
            );
          }
          rt.log.info(`maintenance turned ${word}`, { cluster: input.cluster, site: input.site, host: m.host });
          return { changed: true, actDetail: `maintenance turned ${word} (${brief(act)})` };
        }));
      } catch (err) {
        throw err instanceof SshConnectError ? err.toActionError() : err;
      }
      const http = await readHttp(s.app?.url);
      const expected = want ? 503 : 200;
      const agree = http.httpStatus === null ? '' : http.httpStatus === expected ? ' (as expected)' : ` (expected ${expected})`;
      return { site: input.site, on: want, httpStatus: http.httpStatus, changed, detail: `${actDetail}; ${http.detail}${agree}` };
    }),
  };
}
