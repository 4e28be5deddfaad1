/**
 * Runs last: the tests before it must have left no process, port or temp dir behind, even the
 * ones that failed. Test fixtures name their temp dirs "switchyard-test-*" so they can be found.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { it } from 'node:test';

it('no test process is left running', () => {
  const ps = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  const leftovers = ps.split('\n').filter((l) => /switchyard-test-/.test(l) && !/\bps -eo\b/.test(l));
  assert.deepEqual(leftovers, []);
});

it('no test temp dir is left behind', () => {
  const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith('switchyard-test-'));
  assert.deepEqual(dirs, []);
});
