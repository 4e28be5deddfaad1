/**
 * Watches a process and takes its sandbox down when it dies without doing so itself (a test
 * process killed with SIGKILL, a crashed runner): started detached by test/support/sandbox.ts.
 * Its command line names the sandbox dir, so a normal `down` sweeps the reaper away as well.
 *
 *   node --import tsx sandbox/reaper.ts <pid> <pid-start-time> <sandbox-dir>
 */
import { sandboxDown, sandboxKillSync } from './index';
import { isAlive } from './procs';

const [pidText, startTime, dir] = process.argv.slice(2);
const pid = Number(pidText);
if (!Number.isInteger(pid) || !startTime || !dir) {
  process.stderr.write('usage: reaper.ts <pid> <pid-start-time> <sandbox-dir>\n');
  process.exit(2);
}

const timer = setInterval(() => {
  if (isAlive(pid, startTime)) return;
  clearInterval(timer);
  process.stderr.write(`reaper: pid ${pid} is gone; taking the sandbox in ${dir} down\n`);
  sandboxDown({ dir }).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`reaper: down failed (${(err as Error).message}); killing\n`);
      try {
        sandboxKillSync({ dir });
      } finally {
        process.exit(1);
      }
    },
  );
}, 500);
