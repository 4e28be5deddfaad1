/**
 * Human checkpoints (DESIGN.md section 3): a durable wait for a person's decision, delivered as the
 * signal `decision` or the update `decide`, both through one validator. A refused signal changes
 * nothing and is recorded in the step log with its reason; a refused update is answered with the
 * reason and never enters history. Each wait has a reminder and a deadline; past the deadline the
 * outcome is `deadline` and the runbook takes its safe action (abort, never proceed).
 */
import { condition, setHandler } from '@temporalio/workflow';
import { decideUpdate, decisionSignal, type Decision } from '../../contract/messages';
import type { StepLog } from './steps';

export interface CheckpointPolicy {
  /** Who may decide; empty means anyone who can reach the run. */
  approvers: string[];
  /** The person who started the run may not approve its safety checkpoints. */
  twoPerson: boolean;
  remindAfterSeconds: number;
  deadlineSeconds: number;
}

export interface CheckpointOutcome {
  checkpoint: string;
  decision: 'approve' | 'reject' | 'deadline';
  by: string | null;
  comment: string | null;
  /** Workflow time of the decision (or of the deadline). */
  at: string;
  waitedSeconds: number;
}

export interface CheckpointWait {
  /** What the person is asked, with what was tried and seen. */
  prompt: string;
  /** A safety checkpoint falls under the two-person rule. */
  safety: boolean;
}

type Notify = (event: 'checkpoint' | 'checkpoint-reminder' | 'checkpoint-deadline', text: string) => Promise<unknown>;

export class Checkpoints {
  private waiting: { name: string; safety: boolean } | null = null;
  private decided: Decision | null = null;

  constructor(
    private readonly steps: StepLog,
    private readonly policy: CheckpointPolicy,
    /** The person who started the run (the two-person rule compares with this). */
    private readonly startedBy: string,
    /** Every checkpoint this runbook can wait at. */
    private readonly known: readonly string[],
    private readonly notify: Notify = async () => undefined,
  ) {
    setHandler(decisionSignal, (d: Decision) => {
      const reason = this.refusal(d);
      if (reason) {
        this.steps.note(
          `decision:${str(d?.checkpoint) || '?'}`,
          `refused ${str(d?.decision) || 'decision'} from ${str(d?.by) || 'nobody'}: ${reason}`,
          'failed',
        );
        return;
      }
      this.decided = d;
    });
    setHandler(
      decideUpdate,
      (d: Decision) => {
        this.decided = d;
        return { accepted: true as const, checkpoint: d.checkpoint, decision: d.decision };
      },
      {
        validator: (d: Decision) => {
          const reason = this.refusal(d);
          if (reason) throw new Error(reason);
        },
      },
    );
  }

  /** Why a decision is refused, or null when it is accepted. */
  refusal(d: Decision): string | null {
    if (!d || typeof d !== 'object') return 'a decision is an object { checkpoint, decision, by, comment? }';
    const name = str(d.checkpoint);
    if (!this.known.includes(name)) return `unknown checkpoint "${name}"; this runbook's checkpoints are ${this.known.map((k) => `"${k}"`).join(', ')}`;
    if (this.waiting?.name !== name)
      return `the run is not waiting at "${name}" (${this.waiting ? `it waits at "${this.waiting.name}"` : 'it waits at no checkpoint'})`;
    if (this.decided) return `"${name}" was already decided`;
    if (d.decision !== 'approve' && d.decision !== 'reject') return `decision must be "approve" or "reject", got ${JSON.stringify(d.decision)}`;
    const by = str(d.by).trim();
    if (!by) return 'a decision needs the name of the person deciding ("by")';
    if (this.policy.approvers.length > 0 && !this.policy.approvers.includes(by))
      return `"${by}" may not decide here; approvers: ${this.policy.approvers.join(', ')}`;
    if (this.policy.twoPerson && this.waiting.safety && d.decision === 'approve' && by === this.startedBy)
      return `"${by}" started this run and may not approve its safety checkpoint "${name}" (two-person rule): another approver must`;
    return null;
  }

  /** Waits for a decision at `name`; past the deadline the outcome is "deadline". */
  async wait(name: string, opts: CheckpointWait): Promise<CheckpointOutcome> {
    if (!this.known.includes(name)) throw new Error(`checkpoint "${name}" is not among this runbook's checkpoints`);
    const started = Date.now();
    const deadline = started + this.policy.deadlineSeconds * 1000;
    this.waiting = { name, safety: opts.safety };
    this.decided = null;
    this.steps.setWaitingFor(name);
    try {
      return await this.steps.run(
        `checkpoint:${name}`,
        async (): Promise<CheckpointOutcome> => {
          await this.notify('checkpoint', `waiting at "${name}": ${opts.prompt}`);
          let reminders = 0;
          for (;;) {
            const left = deadline - Date.now();
            const slice = Math.min(left, this.policy.remindAfterSeconds * 1000);
            if (slice > 0 && (await condition(() => this.decided !== null, slice))) break;
            if (Date.now() >= deadline) {
              const text = `no decision at "${name}" within ${this.policy.deadlineSeconds} s: the run stops safely`;
              await this.notify('checkpoint-deadline', text);
              return outcome(name, 'deadline', null, null, started);
            }
            reminders++;
            this.steps.note(`reminder:${name}`, `still waiting at "${name}" (reminder ${reminders}): ${opts.prompt}`);
            await this.notify('checkpoint-reminder', `still waiting at "${name}" (reminder ${reminders}): ${opts.prompt}`);
          }
          const d = this.decided as Decision | null;
          if (!d) throw new Error('unreachable: no decision after the wait');
          return outcome(name, d.decision, d.by.trim(), d.comment ?? null, started);
        },
        (o) =>
          o.decision === 'deadline'
            ? `no decision within the deadline (${this.policy.deadlineSeconds} s)`
            : `${o.decision === 'approve' ? 'approved' : 'rejected'} by ${o.by}${o.comment ? `: ${o.comment}` : ''}`,
        { state: 'waiting', detail: opts.prompt },
      );
    } finally {
      this.waiting = null;
      this.steps.setWaitingFor(null);
    }
  }
}

/**
 * Why a checkpoint did not let the run go on, as its abort reason: the deadline passed, or who
 * rejected it (with the comment when `rejected.comment`, then `rejected.suffix`).
 */
export function notApproved(d: CheckpointOutcome, rejected: { comment?: boolean; suffix?: string } = {}): string {
  if (d.decision === 'deadline') return `no decision at ${d.checkpoint} before its deadline`;
  return `${d.checkpoint} rejected by ${d.by}${rejected.comment && d.comment ? `: ${d.comment}` : ''}${rejected.suffix ?? ''}`;
}

/** A checkpoint event as the runbook's notification: checkpoint.waiting, checkpoint.reminder or checkpoint.deadline. */
export function checkpointNotices(notify: (event: string, text: string) => Promise<unknown>): Notify {
  return (event, text) => notify(`checkpoint.${event === 'checkpoint' ? 'waiting' : event === 'checkpoint-reminder' ? 'reminder' : 'deadline'}`, text);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function outcome(checkpoint: string, decision: CheckpointOutcome['decision'], by: string | null, comment: string | null, started: number): CheckpointOutcome {
  const now = Date.now();
  return { checkpoint, decision, by, comment, at: new Date(now).toISOString(), waitedSeconds: Math.round((now - started) / 1000) };
}
