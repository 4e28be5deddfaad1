/**
 * Runs last: the tests before it must have left no process, port or temp dir behind, even the
 * ones that failed. Test fixtures name their temp dirs "switchyard-test-*" so they can be found.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';

it('no test process is left running', () => {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  const leftovers = ps.split('\n').filter((l) => /switchyard-test-/.test(l) && !/\bps -eo\b/.test(l));
  assert.deepEqual(leftovers, []);
});

it('no test temp dir is left behind', () => {
  const dirs = readdirSync(tmpdir())
    .filter((d) => d.startsWith('switchyard-test-'))
    .map((d) => `${d}: ${inside(join(tmpdir(), d))}`);
  assert.deepEqual(dirs, []);
});

/** What a leftover holds (the first names in a dir, a lock's pid), so the failure says whose it was. */
function inside(path: string): string {
  try {
    if (statSync(path).isDirectory()) return `dir of ${readdirSync(path).sort().slice(0, 12).join(', ') || 'nothing'}`;
    return `file holding ${JSON.stringify(readFileSync(path, 'utf8').slice(0, 80))}`;
  } catch (err) {
    return (err as Error).message;
  }
}
