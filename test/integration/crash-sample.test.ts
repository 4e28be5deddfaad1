/**
 * A rotating sample of the crash matrix (test/support/crash.ts, issue 11), first half of the
 * runbooks (crash-sample-b.test.ts has the rest, so the suite runs them beside other files). One
 * of its four runbooks per run, chosen by the seed (every runbook comes up once in four
 * consecutive seeds; SWITCHYARD_CRASH_PER_RUN=2 takes two, SWITCHYARD_CRASH_SAMPLE=all the
 * four): for each, a reference run
 * without a crash, then one step of its own step log, chosen by the seed,
 * with the worker SIGKILLed while it runs or just after it completed; a new worker finishes the
 * run, and the end state must equal the reference's. The seed is printed; rerun a sample with
 * SWITCHYARD_CRASH_SEED=<seed>. `npm run test:crash` runs every step.
 */
import { crashSample } from '../support/crash';

crashSample(['failover', 'switchover', 'rejoin', 'backup']);
