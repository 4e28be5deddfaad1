/**
 * The failover's data-loss judgement, pure: how far the standby to promote is behind the old
 * primary's last known position, and how sure we are of that position.
 *
 * Best source first: the old primary's shutdown checkpoint after a clean stop (exact: nothing was
 * committed after it); a reading of the old primary taken when the run started (a lower bound:
 * it may have written more before it was stopped); its control file after a crash (lower bound);
 * the last readiness run's reading (lower bound). The standby's position is what it received:
 * promotion replays everything received first, so WAL received but not replayed is not lost.
 */
import type { PgControlData, PgNodeStatus } from '../../contract/observations';
import { lsnMax, lsnMinus } from '../../contract/lsn';

export interface DataLoss {
  /** Bytes the old primary had that the promoted standby did not receive; null when unknown. */
  bytes: number | null;
  /** True when the old primary's position is exact (its shutdown checkpoint); false: a lower bound. */
  exact: boolean;
  /** Where the old primary's last position came from. */
  source: 'shutdown-checkpoint' | 'live-reading' | 'crash-checkpoint' | 'readiness' | 'unknown';
  oldPrimaryLsn: string | null;
  standbyLsn: string | null;
  /** When the old primary's position was read (ISO); null when exact or unknown. */
  observedAt?: string | null;
  detail: string;
}

export interface LastReading {
  found: boolean;
  lsn: string | null;
  node: string | null;
  observedAt: string | null;
  workflowId: string | null;
}

export function judgeLoss(o: {
  oldNode: string;
  control: PgControlData | null;
  oldAtStart: PgNodeStatus;
  last: LastReading | null;
  standby: PgNodeStatus;
  oldAtStartAt?: string;
}): DataLoss {
  const { oldNode, control, oldAtStart, last, standby } = o;
  let observedAt: string | null = null;
  const standbyLsn = standby.inRecovery === false ? (standby.currentLsn ?? null) : lsnMax(standby.receiveLsn, standby.replayLsn);
  let source: DataLoss['source'];
  let oldLsn: string | null;
  let exact = false;
  let from: string;
  if (control && control.state === 'shut down' && control.checkpointLsn) {
    source = 'shutdown-checkpoint';
    oldLsn = control.checkpointLsn;
    exact = true;
    from = `${oldNode} shut down cleanly at ${oldLsn} (pg_controldata)`;
  } else if (oldAtStart.reachable && oldAtStart.inRecovery === false && oldAtStart.currentLsn) {
    source = 'live-reading';
    oldLsn = lsnMax(oldAtStart.currentLsn, control?.checkpointLsn);
    observedAt = o.oldAtStartAt ?? null;
    from =
      `${oldNode} was at ${oldAtStart.currentLsn} when this run started` +
      (control ? ` (its control file: ${control.state ?? '?'}, checkpoint ${control.checkpointLsn ?? '?'})` : '');
  } else {
    const lastLsn = last?.found && last.node === oldNode ? last.lsn : null;
    oldLsn = lsnMax(lastLsn, control?.checkpointLsn);
    if (oldLsn === null) {
      source = 'unknown';
      const sawOther = last?.found ? `: the last readiness saw ${last.node} as primary` : '';
      from = `no position of ${oldNode} is known (it could not be asked, and no readiness run recorded one${sawOther})`;
    } else if (lastLsn && oldLsn === lastLsn) {
      source = 'readiness';
      observedAt = last?.observedAt ?? null;
      from = `the last readiness run (${last?.workflowId}, ${last?.observedAt}) saw ${oldNode} at ${lastLsn}; writes after that reading are not known`;
    } else {
      source = 'crash-checkpoint';
      from = `${oldNode}'s control file (state ${control?.state ?? '?'}) names checkpoint ${control?.checkpointLsn}; WAL written after it is not known`;
    }
  }
  const diff = lsnMinus(oldLsn, standbyLsn);
  const bytes = diff === null ? null : Math.max(0, diff);
  const replayGap = standby.inRecovery ? lsnMinus(standby.receiveLsn, standby.replayLsn) : null;
  const detail =
    `${from}; ${standby.node} has ${standbyLsn ?? 'no known position'}` +
    (bytes === null ? ': data loss unknown' : `: ${bytes} bytes behind${exact ? '' : ' (at least)'}`) +
    (replayGap && replayGap > 0 ? `; ${replayGap} bytes received but not yet replayed (promotion replays them first)` : '');
  return { bytes, exact, source, oldPrimaryLsn: oldLsn, standbyLsn, observedAt, detail };
}

/**
 * Whether the data-loss gate asks a person: when the figure is unknown, past the threshold, or a
 * lower bound whose reading is not younger than `freshnessSeconds` (writes after an old reading
 * are not known, so "0 bytes at least" from an hour ago says nothing). `why` is for the prompt.
 */
export function lossGate(loss: DataLoss, thresholdBytes: number, freshnessSeconds: number, nowMs: number): { ask: boolean; why: string } {
  if (loss.bytes === null) return { ask: true, why: 'the data lost cannot be measured' };
  if (loss.bytes > thresholdBytes)
    return { ask: true, why: `${loss.bytes} bytes${loss.exact ? '' : ' at least'} is past the threshold of ${thresholdBytes} bytes` };
  if (loss.exact) return { ask: false, why: `exact: ${loss.bytes} bytes, within the threshold of ${thresholdBytes} bytes` };
  const at = loss.observedAt ? Date.parse(loss.observedAt) : NaN;
  if (Number.isNaN(at)) return { ask: true, why: `${loss.bytes} bytes is only a lower bound, from a reading of unknown age: writes after it are not known` };
  const age = Math.max(0, Math.round((nowMs - at) / 1000));
  if (age <= freshnessSeconds)
    return { ask: false, why: `a lower bound of ${loss.bytes} bytes from a reading ${age} s old (within the ${freshnessSeconds} s freshness)` };
  return {
    ask: true,
    why:
      `${loss.bytes} bytes is only a lower bound, from a reading ${age} s old ` +
      `(older than the ${freshnessSeconds} s freshness): writes after it are not known`,
  };
}
