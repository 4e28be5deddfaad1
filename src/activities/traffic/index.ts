/**
 * Where client traffic points, and moving it: the trafficRead and trafficMove activities, which
 * hand each driver kind to its own file (haproxy, elastic-ip, private-ip, command). Moves are
 * check-then-act and verified by reading back.
 */
import type { TrafficDriverConfig } from '../../topology/schema';
import type { TrafficState } from '../../contract/observations';
import type { Call, Runtime } from '../runtime';
import { moveCommand, readCommand } from './command';
import { readFailure } from './driver';
import { moveElasticIp, readElasticIp } from './elastic-ip';
import { moveHaproxy, readHaproxy } from './haproxy';
import { movePrivateIp, readPrivateIp } from './private-ip';

export function trafficActivities(rt: Runtime) {
  /** Read where traffic points; `strict` throws on unreachable targets (for moves), else reports them. */
  const read = async (call: Call, cluster: string, d: TrafficDriverConfig, strict: boolean): Promise<TrafficState> => {
    try {
      switch (d.kind) {
        case 'haproxy':
          return await readHaproxy(rt, d);
        case 'elastic-ip':
          return await readElasticIp(rt, call, cluster, d);
        case 'private-ip':
          return await readPrivateIp(rt, call, cluster, d);
        case 'command':
          return await readCommand(rt, call, cluster, d);
      }
    } catch (err) {
      return readFailure(d, err, strict);
    }
  };

  return {
    /** Where a driver sends traffic now. Never throws for an unreachable target (site null, detail says why). */
    trafficRead: rt.activity((input: { cluster: string; driver: string }, call) =>
      read(call, input.cluster, call.top.driver(input.cluster, input.driver), false),
    ),

    /**
     * Point a driver at a site: no-op when it already does (haproxy: still shuts stray sessions and
     * saves the state); verified by reading back (throws if it disagrees).
     */
    trafficMove: rt.activity(async (input: { cluster: string; driver: string; site: string }, call): Promise<TrafficState> => {
      const d = call.top.driver(input.cluster, input.driver);
      call.top.nodeOfSite(input.cluster, input.site);
      const before = await read(call, input.cluster, d, true);
      // HAProxy is put in order even when it already points there: a retry after maint but before
      // the sessions were shut, or before the state was saved, finishes the move.
      if (before.site === input.site && d.kind !== 'haproxy') return { ...before, changed: false, detail: `already points at ${input.site}: ${before.detail}` };
      let after: TrafficState;
      switch (d.kind) {
        case 'haproxy':
          after = await moveHaproxy(rt, call, input.cluster, d, input.site, before);
          if (!after.changed) return after;
          break;
        case 'elastic-ip':
          after = await moveElasticIp(rt, call, input.cluster, d, input.site);
          break;
        case 'private-ip':
          after = await movePrivateIp(rt, call, input.cluster, d, input.site);
          break;
        case 'command':
          after = await moveCommand(rt, call, input.cluster, d, input.site);
          break;
      }
      rt.log.info('traffic moved', { cluster: input.cluster, driver: d.name, from: before.site, to: input.site });
      return after;
    }),
  };
}
