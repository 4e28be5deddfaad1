/**
 * The command traffic driver: a read command on a host prints the site traffic points at; a move
 * runs the move command with the target site's name, address and port substituted, then reads back.
 */
import type { TrafficState } from '../../contract/observations';
import type { Call, Runtime } from '../runtime';
import { execArgv, runOnHost, withHost } from '../ssh/exec';
import { substitute } from '../ssh/quote';
import { readFailure, verified, type Driver } from './driver';

function commandState(d: Driver<'command'>, sites: string[], r: { exitCode: number | null; stdout: string; stderr: string }): TrafficState {
  const base = { driver: d.name, kind: d.kind, target: null } as const;
  if (r.exitCode !== 0)
    return { ...base, site: null, detail: `read command exited ${r.exitCode ?? 'without status'}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 300)}` };
  const out = r.stdout.trim();
  return sites.includes(out)
    ? { ...base, site: out, detail: `read command says ${out}` }
    : { ...base, site: null, detail: `read command printed ${JSON.stringify(out.slice(0, 100))}, which is no site` };
}

export async function readCommand(rt: Runtime, call: Call, cluster: string, d: Driver<'command'>): Promise<TrafficState> {
  const sites = Object.keys(call.top.cluster(cluster).sites);
  return withHost(rt, call, cluster, d.host, async (open) => commandState(d, sites, await execArgv(open, d.read, d.timeoutSeconds, call.secrets)));
}

export async function moveCommand(rt: Runtime, call: Call, cluster: string, d: Driver<'command'>, site: string): Promise<TrafficState> {
  const [, n] = call.top.nodeOfSite(cluster, site);
  const argv = substitute(d.move, { site, address: n.host, port: String(n.port) });
  const r = await runOnHost(rt, call, cluster, d.host, argv, d.timeoutSeconds);
  if (r.exitCode !== 0) {
    const how = r.timedOut ? 'timed out' : `exited ${r.exitCode ?? 'without status'}`;
    throw new Error(`move command of traffic driver "${d.name}" ${how}: ${(r.stderr.trim() || r.stdout.trim()).slice(-500)}`);
  }
  const after = await readCommand(rt, call, cluster, d).catch((err: unknown) => readFailure(d, err, true));
  return verified(after, site, `ran ${r.command}`);
}
