/**
 * Who decides at a cluster's checkpoints, how many must agree, and whether a decision must be
 * signed. Approvers are operator names or "@<group>"; both resolve against the topology's
 * `operators` (when it lists none, approvers are free names, as before operators existed).
 */
import { z } from 'zod';
import { duration, positiveInt } from './fields';
import type { Operators } from './operators';

/** Every checkpoint a runbook can wait at, by runbook (the workflows wait at these names). */
export const CHECKPOINTS = {
  failover: ['old-primary-dead', 'accept-data-loss'],
  switchover: ['start-switchover'],
  restore: ['replace-data', 'replace-instance'],
} as const;
export const CHECKPOINT_NAMES: readonly string[] = Object.values(CHECKPOINTS).flat();

const approver = z
  .string({ error: 'expected an operator name or "@<group>"' })
  .regex(/^@?[^\s@]+$/, { error: 'expected an operator name or "@<group>" (no spaces)' });

export const checkpointSchema = z
  .object({
    /** Who may decide at a checkpoint (names or "@group"); empty means anyone who can reach the run. */
    approvers: z.array(approver).default([]),
    /** The person who started a run may not approve its safety checkpoints. */
    twoPerson: z.boolean().default(false),
    remindAfter: duration.default('15m'),
    deadline: duration.default('2h'),
    /** What happens past the deadline: always a safe stop, never proceeding. */
    onDeadline: z.literal('abort').default('abort'),
    /**
     * `required`: a decision counts only when signed (by the console, or by an operator's own key
     * with `switchyard approve --key`); `optional`: unsigned ones count too, marked unverified.
     */
    verifiedDecisions: z.enum(['required', 'optional']).default('optional'),
    /** Per checkpoint: how many distinct approvers must approve, and who may (default: `approvers`). */
    approvals: z.record(z.string(), z.object({ approvals: positiveInt.default(1), approvers: z.array(approver).optional() }).strict()).default({}),
  })
  .strict();
export type CheckpointConfig = z.infer<typeof checkpointSchema>;
/**
 * Names (lowercase) an approver list stands for; unknown groups are reported through `problem`, and
 * names that are not operators too when `operatorsOnly` (they could never sign in or sign).
 */
export function resolveApprovers(
  list: readonly string[],
  operators: Operators,
  problem: (index: number, message: string) => void = () => undefined,
  operatorsOnly = false,
): string[] {
  const names = Object.keys(operators);
  const out = new Set<string>();
  list.forEach((entry, i) => {
    if (entry.startsWith('@')) {
      const group = entry.slice(1);
      const members = names.filter((n) => operators[n].groups.includes(group));
      if (members.length === 0) {
        const groups = [...new Set(names.flatMap((n) => operators[n].groups))];
        problem(
          i,
          `no operator is in group "${group}"; groups: ${groups.length ? groups.map((g) => `"${g}"`).join(', ') : 'none (add `groups` to operators)'}`,
        );
      }
      members.forEach((m) => out.add(m));
    } else {
      const n = entry.toLowerCase();
      if (operatorsOnly && !names.includes(n))
        problem(
          i,
          `"${entry}" is not an operator, so cannot make a verified decision (verifiedDecisions: required); operators: ${names.length ? names.map((k) => `"${k}"`).join(', ') : 'none'}`,
        );
      out.add(n);
    }
  });
  return [...out];
}

/** Checks a cluster's checkpoint policy against the topology's operators and keys. */
export function checkCheckpointPolicy(
  c: CheckpointConfig,
  operators: Operators,
  hasConsoleKey: boolean,
  issue: (path: (string | number)[], message: string) => void,
): void {
  const strict = c.verifiedDecisions === 'required';
  const all = resolveApprovers(c.approvers, operators, (i, m) => issue(['approvers', i], m), strict);
  for (const [cp, rule] of Object.entries(c.approvals)) {
    if (!CHECKPOINT_NAMES.includes(cp)) {
      issue(['approvals', cp], `unknown checkpoint "${cp}"; checkpoints: ${CHECKPOINT_NAMES.map((k) => `"${k}"`).join(', ')}`);
      continue;
    }
    const eligible = rule.approvers ? resolveApprovers(rule.approvers, operators, (i, m) => issue(['approvals', cp, 'approvers', i], m), strict) : all;
    // Anyone may decide: under required signatures that is any operator; else any name at all.
    const pool = eligible.length > 0 ? eligible.length : strict ? Object.keys(operators).length : Infinity;
    if (rule.approvals > pool)
      issue(['approvals', cp, 'approvals'], `${rule.approvals} approvals needed but only ${pool} operator${pool === 1 ? '' : 's'} may approve "${cp}"`);
  }
  if (c.verifiedDecisions === 'required' && !hasConsoleKey && !Object.values(operators).some((o) => o.publicKey))
    issue(
      ['verifiedDecisions'],
      "verified decisions need a key to verify them with: console.publicKey (the console signs) or an operator's publicKey (`switchyard approve --key`)",
    );
}
