/**
 * Takes a sandbox down on behalf of a process that died without doing so: run by
 * sandbox/reaper.cjs once the process it watched is gone. Its command line names the sandbox
 * dir, like every process of the sandbox.
 *
 *   node --import tsx sandbox/reaper.ts <sandbox-dir>
 */
import { sandboxDown, sandboxKillSync } from './index';

const [dir] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: reaper.ts <sandbox-dir>\n');
  process.exit(2);
}

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
