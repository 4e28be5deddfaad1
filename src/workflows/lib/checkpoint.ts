/**
 * Human checkpoints (DESIGN.md section 3): a durable wait for a person's decision, delivered as the
 * signal `decision` or the update `decide`, both through one validator. A refused signal changes
 * nothing and is recorded in the step log with its reason; a refused update is answered with the
 * reason and never enters history. A decision is counted only while the run waits at that
 * checkpoint; a wait needs `approvals` distinct eligible approvers (any eligible rejection ends it),
 * identities compare case-insensitively, and a signed decision counts as its signer
 * (lib/decision-proof.ts; unsigned ones are refused where the policy requires signatures, and
 * marked unverified elsewhere). Each wait has a reminder and a deadline; past the deadline the
 * outcome is `deadline` and the runbook takes its safe action (abort, never proceed).
 */
import { condition, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { decideUpdate, decisionSignal, type Approval, type DecideResult, type Decision, type Waiting } from '../../contract/messages';
import type { CheckpointLayout } from '../../topology/layout';
import { consoleLink } from '../../contract/console-links';
import type { StartProof } from '../../contract/decision-proof';
import { identify, identifyStarter } from './decision-proof';
import type { StepLog } from './steps';
import { operationOf, recordCheckpointOverdue, recordCheckpointWait } from './metrics';

/** The cluster's checkpoint policy, as its layout carries it. */
export type CheckpointPolicy = CheckpointLayout;

/**
 * Runs that reach a checkpoint after this patch count approvals per wait (M-of-N), compare
 * identities case-insensitively, verify signed decisions and refuse unsigned ones where the
 * policy says so; runs recorded before it replay with the rules they ran under.
 */
export const CHECKPOINT_APPROVALS_PATCH = 'checkpoint-approvals';

export interface CheckpointOutcome {
  checkpoint: string;
  decision: 'approve' | 'reject' | 'deadline';
  /** Who decided (several approvers: their names, comma-separated). */
  by: string | null;
  comment: string | null;
  /** Workflow time of the decision (or of the deadline). */
  at: string;
  waitedSeconds: number;
  /** Every approval counted, in order (absent in runs that predate M-of-N). */
  approvals?: Approval[];
  /** Who vouched for a rejection's `by` (null: unsigned); absent for approvals and deadlines. */
  verifiedBy?: string | null;
}

export interface CheckpointWait {
  /** What the person is asked, with what was tried and seen. */
  prompt: string;
  /** A safety checkpoint falls under the two-person rule. */
  safety: boolean;
}

type Notify = (
  event: 'checkpoint' | 'checkpoint-reminder' | 'checkpoint-deadline' | 'checkpoint-approval',
  text: string,
  checkpoint?: string,
) => Promise<unknown>;

interface Current {
  name: string;
  safety: boolean;
  waiting: Waiting;
  /** A counted rejection ends the wait. */
  rejected: { by: string; comment: string | null; verifiedBy: string | null; at: string } | null;
  /** Before the patch: the one decision that ends the wait. */
  legacy: Decision | null;
}

type Checked = { refused: string } | { who: string; verifiedBy: string | null };

export class Checkpoints {
  private current: Current | null = null;
  private readonly counts = new Map<string, number>();
  private readonly v2: boolean;
  /** Who started the run: verified when its input carried a start proof that verifies. */
  private readonly starter: { who: string; verifiedBy: string | null };

  constructor(
    private readonly steps: StepLog,
    private readonly policy: CheckpointPolicy,
    /** The person who started the run (the two-person rule compares with this). */
    private readonly startedBy: string,
    /** Every checkpoint this runbook can wait at. */
    private readonly known: readonly string[],
    private readonly notify: Notify = async () => undefined,
    /** The input's `startProof`, when the console or a signing client started the run. */
    startProof?: StartProof,
  ) {
    this.v2 = patched(CHECKPOINT_APPROVALS_PATCH);
    const info = workflowInfo();
    const s = identifyStarter(
      startProof,
      { workflowId: info.workflowId, workflowType: info.workflowType, cluster: steps.cluster },
      startedBy,
      policy.keys ?? {},
    );
    this.starter = { who: s.who, verifiedBy: s.verifiedBy };
    if (this.v2 && s.problem) this.steps.note('start-proof', `${s.problem}: the starter "${s.who}" counts as unverified`, 'failed');
    setHandler(decisionSignal, (d: Decision) => {
      const c = this.check(d);
      if ('refused' in c) {
        this.steps.note(
          `decision:${str(d?.checkpoint) || '?'}`,
          `refused ${str(d?.decision) || 'decision'} from ${str(d?.by) || 'nobody'}: ${c.refused}`,
          'failed',
        );
        return;
      }
      this.apply(d, c);
    });
    setHandler(decideUpdate, (d: Decision) => this.apply(d, this.check(d) as Exclude<Checked, { refused: string }>), {
      validator: (d: Decision) => {
        const c = this.check(d);
        if ('refused' in c) throw new Error(c.refused);
      },
    });
  }

  /** Why a decision is refused (`refused`), or whose it is. */
  private check(d: Decision): Checked {
    if (!d || typeof d !== 'object') return { refused: 'a decision is an object { checkpoint, decision, by, comment? }' };
    const name = str(d.checkpoint);
    if (!this.known.includes(name))
      return { refused: `unknown checkpoint "${name}"; this runbook's checkpoints are ${this.known.map((k) => `"${k}"`).join(', ')}` };
    const cur = this.current;
    if (cur?.name !== name) return { refused: `the run is not waiting at "${name}" (${cur ? `it waits at "${cur.name}"` : 'it waits at no checkpoint'})` };
    if (this.settled(cur)) return { refused: `"${name}" was already decided` };
    if (d.decision !== 'approve' && d.decision !== 'reject') return { refused: `decision must be "approve" or "reject", got ${JSON.stringify(d.decision)}` };
    const typed = str(d.by).trim();
    if (!typed) return { refused: 'a decision needs the name of the person deciding ("by")' };
    if (!this.v2) return this.legacyCheck(typed, d, cur);
    const id = identify(d, { workflowId: workflowInfo().workflowId, runId: cur.waiting.runId, waitId: cur.waiting.waitId }, this.policy.keys ?? {});
    if (!id.ok) return { refused: id.reason };
    if (id.verifiedBy === null && cur.waiting.verifiedDecisions === 'required')
      return {
        refused:
          `this cluster accepts only verified decisions: approve in the console${cur.waiting.link ? ` (${cur.waiting.link})` : ''}, ` +
          `or sign with your own key: switchyard ${d.decision} ${workflowInfo().workflowId} ${name} --as <you> --key <your key file>`,
      };
    const who = id.who;
    const eligible = cur.waiting.eligible;
    if (eligible.length > 0 && !eligible.includes(who)) return { refused: `"${who}" may not decide at "${name}"; approvers: ${eligible.join(', ')}` };
    if (d.decision === 'approve') {
      if (cur.waiting.starterExcluded && who === this.starter.who)
        return { refused: `"${who}" started this run and may not approve its safety checkpoint "${name}" (two-person rule): another approver must` };
      if (cur.waiting.approvals.some((a) => a.by === who))
        return {
          refused: `"${who}" already approved "${name}" (${cur.waiting.approvals.length} of ${cur.waiting.required}): another approver must`,
        };
    }
    return { who, verifiedBy: id.verifiedBy };
  }

  /** The rules of runs that predate the patch: self-declared names, compared as typed. */
  private legacyCheck(by: string, d: Decision, cur: Current): Checked {
    if (this.policy.approvers.length > 0 && !this.policy.approvers.includes(by))
      return { refused: `"${by}" may not decide here; approvers: ${this.policy.approvers.join(', ')}` };
    if (this.policy.twoPerson && cur.safety && d.decision === 'approve' && by === this.startedBy)
      return { refused: `"${by}" started this run and may not approve its safety checkpoint "${cur.name}" (two-person rule): another approver must` };
    return { who: by, verifiedBy: null };
  }

  private settled(cur: Current): boolean {
    if (!this.v2) return cur.legacy !== null;
    return cur.rejected !== null || cur.waiting.approvals.length >= cur.waiting.required;
  }

  private apply(d: Decision, c: { who: string; verifiedBy: string | null }): DecideResult {
    const cur = this.current!;
    if (!this.v2) {
      cur.legacy = d;
      return { accepted: true, checkpoint: d.checkpoint, decision: d.decision };
    }
    const at = new Date().toISOString();
    const comment = typeof d.comment === 'string' && d.comment.trim() ? d.comment.trim() : null;
    if (d.decision === 'reject') cur.rejected = { by: c.who, comment, verifiedBy: c.verifiedBy, at };
    else {
      cur.waiting.approvals.push({ by: c.who, at, comment, verifiedBy: c.verifiedBy });
      const n = cur.waiting.approvals.length;
      if (n < cur.waiting.required) {
        const text = `${c.who} approved "${cur.name}" (${vouched(c.verifiedBy)}): ${n} of ${cur.waiting.required} approvals, waiting for another approver`;
        this.steps.note(`approval:${cur.name}`, text);
        void this.notify('checkpoint-approval', text, cur.name);
      }
    }
    return {
      accepted: true,
      checkpoint: d.checkpoint,
      decision: d.decision,
      approvals: cur.waiting.approvals.length,
      required: cur.waiting.required,
      decided: this.settled(cur),
    };
  }

  /** Waits for a decision at `name`; past the deadline the outcome is "deadline". */
  async wait(name: string, opts: CheckpointWait): Promise<CheckpointOutcome> {
    if (!this.known.includes(name)) throw new Error(`checkpoint "${name}" is not among this runbook's checkpoints`);
    const started = Date.now();
    const deadline = started + this.policy.deadlineSeconds * 1000;
    const n = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, n);
    const rule = this.policy.approvals?.[name];
    const link = this.policy.consoleUrl ? consoleLink(this.policy.consoleUrl, workflowInfo().workflowId, name) : null;
    const waiting: Waiting = {
      checkpoint: name,
      waitId: `${name}#${n}`,
      runId: workflowInfo().runId,
      prompt: opts.prompt,
      requestedBy: this.startedBy,
      requestedByVerifiedBy: this.v2 ? this.starter.verifiedBy : null,
      since: new Date(started).toISOString(),
      deadline: new Date(deadline).toISOString(),
      onDeadline: 'abort',
      approvals: [],
      required: this.v2 ? (rule?.approvals ?? 1) : 1,
      eligible: (rule?.approvers ?? this.policy.approvers).map((a) => (this.v2 ? a.toLowerCase() : a)),
      starterExcluded: this.policy.twoPerson && opts.safety,
      verifiedDecisions: this.v2 ? (this.policy.verifiedDecisions ?? 'optional') : 'optional',
      link,
    };
    const cur: Current = { name, safety: opts.safety, waiting, rejected: null, legacy: null };
    this.current = cur;
    this.steps.setWaitingFor(name, waiting);
    const operation = operationOf(workflowInfo().workflowType);
    let decided: CheckpointOutcome | null = null;
    try {
      return (decided = await this.steps.run(
        `checkpoint:${name}`,
        async (): Promise<CheckpointOutcome> => {
          await this.notify('checkpoint', `waiting at "${name}": ${opts.prompt}`, this.v2 ? name : undefined);
          let reminders = 0;
          for (;;) {
            const left = deadline - Date.now();
            const slice = Math.min(left, this.policy.remindAfterSeconds * 1000);
            if (slice > 0 && (await condition(() => this.settled(cur), slice))) break;
            if (Date.now() >= deadline) {
              const text = `no decision at "${name}" within ${this.policy.deadlineSeconds} s: the run stops safely`;
              await this.notify('checkpoint-deadline', text, this.v2 ? name : undefined);
              return outcome(name, 'deadline', null, null, started, this.v2 ? { approvals: [...waiting.approvals] } : {});
            }
            reminders++;
            recordCheckpointOverdue(operation, this.steps.cluster, name);
            this.steps.note(`reminder:${name}`, `still waiting at "${name}" (reminder ${reminders}): ${opts.prompt}`);
            await this.notify('checkpoint-reminder', `still waiting at "${name}" (reminder ${reminders}): ${opts.prompt}`, this.v2 ? name : undefined);
          }
          if (!this.v2) {
            const d = cur.legacy;
            if (!d) throw new Error('unreachable: no decision after the wait');
            return outcome(name, d.decision, d.by.trim(), d.comment ?? null, started);
          }
          if (cur.rejected)
            return outcome(name, 'reject', cur.rejected.by, cur.rejected.comment, started, {
              approvals: [...waiting.approvals],
              verifiedBy: cur.rejected.verifiedBy,
            });
          const a = waiting.approvals;
          const comment =
            a.length === 1
              ? a[0].comment
              : a
                  .filter((x) => x.comment)
                  .map((x) => `${x.by}: ${x.comment}`)
                  .join('; ') || null;
          return outcome(name, 'approve', a.map((x) => x.by).join(', '), comment, started, { approvals: [...a] });
        },
        (o) => this.describe(o),
        { state: 'waiting', detail: opts.prompt },
      ));
    } finally {
      // How long it waited and how it ended (cancelled: the run was withdrawn while it waited).
      const how = decided === null ? 'withdrawn' : ({ approve: 'approved', reject: 'rejected', deadline: 'timed-out' } as const)[decided.decision];
      recordCheckpointWait(operation, this.steps.cluster, name, how, (Date.now() - started) / 1000);
      this.current = null;
      this.steps.setWaitingFor(null);
    }
  }

  private describe(o: CheckpointOutcome): string {
    if (o.decision === 'deadline') return `no decision within the deadline (${this.policy.deadlineSeconds} s)`;
    if (!this.v2) return `${o.decision === 'approve' ? 'approved' : 'rejected'} by ${o.by}${o.comment ? `: ${o.comment}` : ''}`;
    if (o.decision === 'reject') return `rejected by ${o.by} (${vouched(o.verifiedBy ?? null)})${o.comment ? `: ${o.comment}` : ''}`;
    const a = o.approvals ?? [];
    return `approved by ${a.map((x) => `${x.by} (${vouched(x.verifiedBy)})`).join(', ')}${o.comment ? `: ${o.comment}` : ''}`;
  }
}

/** How an identity was vouched for, in a step log. */
function vouched(verifiedBy: string | null): string {
  if (verifiedBy === null) return 'unverified';
  if (verifiedBy === 'console') return 'signed in at the console';
  return `signed with ${verifiedBy.slice('operator:'.length)}'s key`;
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
export function checkpointNotices(notify: (event: string, text: string, fields?: Record<string, string>) => Promise<unknown>): Notify {
  const names = { checkpoint: 'waiting', 'checkpoint-reminder': 'reminder', 'checkpoint-deadline': 'deadline', 'checkpoint-approval': 'approval' } as const;
  return (event, text, checkpoint) => notify(`checkpoint.${names[event]}`, text, checkpoint ? { checkpoint } : undefined);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function outcome(
  checkpoint: string,
  decision: CheckpointOutcome['decision'],
  by: string | null,
  comment: string | null,
  started: number,
  extra: Pick<CheckpointOutcome, 'approvals' | 'verifiedBy'> = {},
): CheckpointOutcome {
  const now = Date.now();
  return { checkpoint, decision, by, comment, at: new Date(now).toISOString(), waitedSeconds: Math.round((now - started) / 1000), ...extra };
}
