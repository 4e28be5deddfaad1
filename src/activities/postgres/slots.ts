/**
 * The physical replication slot a standby streams through, made on the primary when it is not
 * there yet (WAL is reserved from then on).
 */
import { ApplicationFailure } from '@temporalio/common';
import type { PgEnsureSlotResult } from '../../contract/observations';
import { Errors } from '../../contract/errors';
import { configError } from '../resolver';
import type { Runtime } from '../runtime';
import { withPgClient } from './connect';
import { nodeWhere, pgActionError, textOrNull } from './shared';

const SLOT_RE = /^[a-z0-9_]{1,63}$/;

export interface PgEnsureSlotInput {
  cluster: string;
  primary: string;
  slot: string;
}

export function slotActivities(rt: Runtime) {
  return {
    /**
     * A physical replication slot on the primary (pg_create_physical_replication_slot(slot, true):
     * WAL is reserved from now on) unless it exists. Refuses (WrongRole) a node in recovery.
     */
    pgEnsureSlot: rt.activity(async (input: PgEnsureSlotInput, call): Promise<PgEnsureSlotResult> => {
      const n = call.top.node(input.cluster, input.primary);
      if (typeof input.slot !== 'string' || !SLOT_RE.test(input.slot))
        throw configError(`slot must be a replication slot name (lowercase letters, digits, "_"), got ${JSON.stringify(input.slot)}`);
      const w = nodeWhere(input.primary, n);
      try {
        return await withPgClient(rt, call, input.cluster, input.primary, async (client) => {
          const [s] = (await client.query('SELECT pg_is_in_recovery() AS rec')).rows;
          if (s.rec === true)
            throw ApplicationFailure.nonRetryable(`${w} is in recovery (a standby): slots for standbys belong on the primary`, Errors.WrongRole);
          const read = async () =>
            (await client.query(`SELECT slot_type, restart_lsn::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1`, [input.slot])).rows[0];
          let slot = await read();
          let created = false;
          if (!slot) {
            try {
              await client.query('SELECT pg_create_physical_replication_slot($1, true)', [input.slot]);
              created = true;
            } catch (err) {
              // 42710: made by someone else between our read and the create.
              if ((err as { code?: unknown })?.code !== '42710') throw err;
            }
            slot = await read();
          }
          if (slot && slot.slot_type !== 'physical')
            throw configError(`slot "${input.slot}" on ${w} exists as a ${String(slot.slot_type)} slot, not a physical one`);
          const restart = textOrNull(slot?.restart_lsn) ?? 'none';
          if (created) rt.log.info('replication slot created', { cluster: input.cluster, node: input.primary, slot: input.slot });
          return {
            primary: input.primary,
            slot: input.slot,
            created,
            detail: `${created ? 'created' : 'already had'} physical slot "${input.slot}" on ${w} (restart_lsn ${restart})`,
          };
        });
      } catch (err) {
        throw pgActionError(err, `ensuring slot "${input.slot}" on ${w}`);
      }
    }),
  };
}
