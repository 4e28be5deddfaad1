/**
 * The step runner every runbook shares: a step log that the `progress` query returns, and the
 * search attributes that show the current step in the Temporal UI and `temporal workflow list`.
 */
import { log, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { progressQuery, type Progress, type StepRecord, type Waiting } from '../../contract/messages';
import { SA_CLUSTER, SA_OPERATION, SA_STEP, SA_WAITING_FOR } from './search-attributes';

export class StepLog {
  readonly steps: StepRecord[] = [];
  waitingFor: string | null = null;
  /** What the current checkpoint wait needs (a live object: approvals are added as they come). */
  waiting: Waiting | null = null;

  constructor(
    readonly operation: string,
    readonly cluster: string,
  ) {
    setHandler(progressQuery, (): Progress => ({
      operation,
      cluster,
      steps: this.snapshot(),
      waitingFor: this.waitingFor,
      waiting: this.waiting ? { ...this.waiting, approvals: this.waiting.approvals.map((a) => ({ ...a })) } : null,
    }));
    upsertSearchAttributes([
      { key: SA_CLUSTER, value: cluster },
      { key: SA_OPERATION, value: operation },
    ]);
  }

  /**
   * Run one step: recorded as running, then done with `describe(result)` as its detail, or
   * failed with the error's message (and the error rethrown).
   */
  async run<T>(name: string, fn: () => Promise<T>, describe: (result: T) => string = () => '', start?: { state: 'waiting'; detail: string }): Promise<T> {
    const rec = this.begin(name, start);
    try {
      const result = await fn();
      this.end(rec, 'done', describe(result));
      return result;
    } catch (err) {
      this.end(rec, 'failed', err instanceof Error ? messageOf(err) : String(err));
      throw err;
    }
  }

  /** A copy of the log as it is now, for a result (later steps do not change it). */
  snapshot(): StepRecord[] {
    return this.steps.map((s) => ({ ...s }));
  }

  /** A step that was decided not to run, with the reason. */
  skip(name: string, reason: string): void {
    const rec = this.begin(name);
    this.end(rec, 'skipped', reason);
  }

  /** A line in the log that is not an action (a refused decision, an observation). */
  note(name: string, detail: string, state: StepRecord['state'] = 'done'): void {
    const now = new Date().toISOString();
    this.steps.push({ name, state, startedAt: now, endedAt: now, attempts: 1, detail });
    log.info(`${name}: ${detail}`, { step: name, cluster: this.cluster });
  }

  setWaitingFor(checkpoint: string | null, waiting: Waiting | null = null): void {
    this.waitingFor = checkpoint;
    this.waiting = checkpoint === null ? null : waiting;
    upsertSearchAttributes([{ key: SA_WAITING_FOR, value: checkpoint }]);
  }

  private begin(name: string, start?: { state: 'waiting'; detail: string }): StepRecord {
    const previous = this.steps.filter((s) => s.name === name).length;
    const rec: StepRecord = {
      name,
      state: start?.state ?? 'running',
      startedAt: new Date().toISOString(),
      endedAt: null,
      attempts: previous + 1,
      detail: start?.detail ?? '',
    };
    this.steps.push(rec);
    upsertSearchAttributes([{ key: SA_STEP, value: name }]);
    log.info(`step ${name} started`, { step: name, cluster: this.cluster });
    return rec;
  }

  private end(rec: StepRecord, state: StepRecord['state'], detail: string): void {
    rec.state = state;
    rec.detail = detail;
    rec.endedAt = new Date().toISOString();
    log.info(`step ${rec.name} ${state}${detail ? `: ${detail}` : ''}`, { step: rec.name, cluster: this.cluster });
  }
}

/** The message a person should read: an ActivityFailure's cause carries the real one. */
export function messageOf(err: Error): string {
  let e: unknown = err;
  while (e instanceof Error && (e as { cause?: unknown }).cause instanceof Error && /^Activity task failed|^Child Workflow execution failed/.test(e.message)) {
    e = (e as { cause?: unknown }).cause;
  }
  return e instanceof Error ? e.message : String(e);
}
