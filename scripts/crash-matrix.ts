/**
 * `npm run test:crash`: the whole crash matrix of issue 11 (test/support/crash.ts). For each
 * mutating runbook, a reference run, then every step of its step log crashed twice (the worker
 * SIGKILLed while the step runs, and just after it completed), each on a fresh sandbox; the end
 * states compared with the reference's. Prints a line per kill and the figures (runbooks, steps,
 * kills, divergences); exits 1 when any crash diverged.
 *
 *   npm run test:crash                         # every runbook, every step
 *   npm run test:crash -- failover rejoin      # only these runbooks
 *   SWITCHYARD_CRASH_JOBS=2 npm run test:crash # crash runs at once (default 3)
 */
import { CRASH_SPECS, crashRun, referenceRun, type CrashOutcome } from '../test/support/crash';

async function main(argv: string[]): Promise<number> {
  // In the order named (the smallest first gives whole runbooks soonest).
  const chosen = argv.length ? argv.map((a) => CRASH_SPECS.find((s) => s.runbook === a)).filter((s) => s !== undefined) : CRASH_SPECS;
  if (argv.length && chosen.length !== argv.length) throw new Error(`unknown runbook(s); the matrix has: ${CRASH_SPECS.map((s) => s.runbook).join(', ')}`);
  const jobs = Math.max(1, Number(process.env.SWITCHYARD_CRASH_JOBS ?? 3));
  const t0 = Date.now();
  const outcomes: CrashOutcome[] = [];
  let steps = 0;
  let harnessErrors = 0;
  for (const spec of chosen) {
    const ref = await referenceRun(spec);
    const names = (spec.steps ?? ((s) => s))(ref.steps).filter((s) => s !== 'layout');
    steps += names.length;
    process.stdout.write(`${spec.runbook}: reference ${ref.result}, ${names.length} steps: ${names.join(', ')}\n`);
    const cases = names.flatMap((step) => (['during', 'after'] as const).map((when) => ({ step, when })));
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(jobs, cases.length) }, async () => {
        while (next < cases.length) {
          const c = cases[next++];
          const attempt = () =>
            crashRun(spec, c.step, c.when, ref).catch((err: Error): CrashOutcome => ({
              runbook: spec.runbook,
              step: c.step,
              when: c.when,
              reached: false,
              result: `harness error: ${err.message}`,
              diverged: [{ key: 'harness', reference: null, crashed: err.message }],
              seconds: 0,
            }));
          let out = await attempt();
          // The harness itself failed (a sandbox that did not come up, say) before anything was
          // killed: that case says nothing about the runbook, so it is run once more, and both shown.
          if (!out.reached && out.result.startsWith('harness error')) {
            process.stdout.write(`  ${spec.runbook} SIGKILL ${c.when.padEnd(6)} ${c.step.padEnd(40)} ${out.result.split('\n')[0]}: run again\n`);
            harnessErrors++;
            out = await attempt();
          }
          outcomes.push(out);
          process.stdout.write(
            `  ${spec.runbook} SIGKILL ${c.when.padEnd(6)} ${c.step.padEnd(40)} ${out.reached ? '' : '(not reached) '}${out.result}: ${out.diverged.length ? `DIVERGED ${JSON.stringify(out.diverged)}` : 'same end state'} (${out.seconds} s)\n`,
          );
        }
      }),
    );
  }
  const kills = outcomes.filter((o) => o.reached).length;
  const diverged = outcomes.filter((o) => o.diverged.length > 0);
  process.stdout.write(
    `crash matrix: runbooks ${chosen.length}, steps ${steps}, kills ${kills} (${outcomes.length - kills} cases not reached), divergences ${diverged.length}, harness errors run again ${harnessErrors}, ${Math.round((Date.now() - t0) / 60_000)} min\n`,
  );
  return diverged.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`crash matrix: ${err.stack ?? err.message}\n`);
    process.exit(2);
  },
);
