/**
 * A rotating sample of the crash matrix (test/support/crash.ts, issue 11): for each mutating
 * runbook, a reference run without a crash, then one step of its own step log, chosen by the
 * seed, with the worker SIGKILLed while it runs or just after it completed; a new worker finishes
 * the run, and the end state must equal the reference's. The seed is printed; rerun a sample with
 * SWITCHYARD_CRASH_SEED=<seed>. `npm run test:crash` runs every step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CRASH_SPECS, crashRun, referenceRun, seeded } from '../support/crash';

const seed = Number(process.env.SWITCHYARD_CRASH_SEED ?? Math.floor(Date.now() / 1000) % 100_000);
process.stdout.write(`crash sample: seed ${seed} (rerun with SWITCHYARD_CRASH_SEED=${seed})\n`);

describe(`crash sample (seed ${seed})`, { concurrency: true }, () => {
  CRASH_SPECS.forEach((spec, i) => {
    it(`${spec.runbook}: a sampled step crashed ends as the uncrashed run`, { timeout: 900_000, concurrency: false }, async () => {
      const ref = await referenceRun(spec);
      const candidates = (spec.steps ?? ((s) => s))(ref.steps).filter((s) => s !== 'layout');
      assert.ok(candidates.length > 0, `the reference ${spec.runbook} logged steps: ${ref.steps.join(', ')}`);
      const rnd = seeded(seed * 31 + i);
      const step = candidates[Math.floor(rnd() * candidates.length)];
      const when = rnd() < 0.5 ? 'during' : 'after';
      const out = await crashRun(spec, step, when, ref);
      process.stdout.write(`crash sample: ${spec.runbook}: SIGKILL ${when} ${step}${out.reached ? '' : ' (not reached)'}: ${out.result}; ${out.diverged.length ? `DIVERGED ${JSON.stringify(out.diverged)}` : 'same end state'} (${out.seconds} s; reference ${ref.result}, ${ref.steps.length} steps)\n`);
      assert.deepEqual(out.diverged, [], `${spec.runbook} killed ${when} ${step}: the end state differs from the uncrashed run's`);
    });
  });
});
