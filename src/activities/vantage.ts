/**
 * A second vantage point: from a site's `vantage` host, over SSH, pg_isready against the other
 * sites' database nodes. It needs no credentials and says only whether PostgreSQL answers there,
 * which is what the watch needs to tell a dead site from a partition between the worker and it.
 * A failed SSH login or a pg_isready that could not run is "unknown", never "down".
 */
import { join } from 'node:path';
import type { VantageView } from '../contract/observations';
import { errorMessage } from './activity-context';
import type { Runtime } from './runtime';
import { brief, execArgv, SshConnectError, withHost } from './ssh/exec';

/** pg_isready's own bound, and the command's (a little longer). */
const PG_ISREADY_SECONDS = 3;

export function vantageActivities(rt: Runtime) {
  return {
    /** From `site`'s vantage host: does each other site's database node answer? */
    vantageProbe: rt.activity(async (input: { cluster: string; site: string }, call): Promise<VantageView[]> => {
      const site = call.top.site(input.cluster, input.site);
      const c = call.top.cluster(input.cluster);
      if (!site.vantage) return [];
      const v = site.vantage;
      const targets = Object.entries(c.postgres.nodes).filter(([, n]) => n.site !== input.site);
      const base = (node: string) => ({ node, from: v.host, site: input.site });
      try {
        return await withHost(rt, call, input.cluster, v.host, async (open) => {
          const out: VantageView[] = [];
          for (const [name, n] of targets) {
            const bin = v.binDir ? join(v.binDir, 'pg_isready') : 'pg_isready';
            const r = await execArgv(open, [bin, '-h', n.host, '-p', String(n.port), '-t', String(PG_ISREADY_SECONDS)], PG_ISREADY_SECONDS + 5);
            const where = `${n.host}:${n.port}`;
            // pg_isready: 0 accepting, 1 rejecting (starting up or shutting down), 2 no response, 3 not attempted.
            if (r.exitCode === 0)
              out.push({ ...base(name), verdict: 'accepting', detail: `${where} accepts connections, seen from ${v.host} (${input.site})` });
            else if (r.exitCode === 1)
              out.push({ ...base(name), verdict: 'rejecting', detail: `${where} rejects connections (starting up or shutting down), seen from ${v.host}` });
            else if (r.exitCode === 2)
              out.push({ ...base(name), verdict: 'no-answer', detail: `${where} does not answer, seen from ${v.host} (${input.site})` });
            else out.push({ ...base(name), verdict: 'unknown', detail: `pg_isready on ${v.host} could not probe ${where}: ${brief(r)}` });
          }
          return out;
        });
      } catch (err) {
        const why = err instanceof SshConnectError ? err.message : errorMessage(err);
        return targets.map(([name]) => ({
          ...base(name),
          verdict: 'unknown' as const,
          detail: `the vantage host ${v.host} (${input.site}) cannot be asked: ${why}`,
        }));
      }
    }),
  };
}
