/**
 * The one table of failure types (src/contract/errors.ts): the workflows' non-retryable list is
 * derived from it, and no activity throws a type that is not in it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Errors, NON_RETRYABLE_ERRORS } from '../../src/contract/errors';
import { NON_RETRYABLE } from '../../src/workflows/lib/runbook';

const ACTIVITIES = join(__dirname, '../../src/activities');

describe('failure types', () => {
  it('the workflows retry exactly what the table says a retry can help', () => {
    assert.deepEqual([...NON_RETRYABLE], [...NON_RETRYABLE_ERRORS]);
    for (const n of ['ConfigError', 'WrongRole', 'ClusterBusy', 'RestoreMetadataTooLarge', 'Ec2NoVolumes', 'TerminateRefused', 'BackupCorrupt'])
      assert.ok(NON_RETRYABLE.includes(n), `${n} is not retried`);
    assert.equal(NON_RETRYABLE.includes('LockUnreadable'), false, 'an unreadable lock holder is read again');
    assert.equal(Errors.Ec2NoVolumes, 'Ec2NoVolumes');
  });

  it('no activity names a failure type outside the table', () => {
    const bare: string[] = [];
    for (const f of readdirSync(ACTIVITIES, { recursive: true }) as string[]) {
      if (!f.endsWith('.ts')) continue;
      const text = readFileSync(join(ACTIVITIES, f), 'utf8');
      for (const m of text.matchAll(/(?:type:\s*|nonRetryable\([^;]*?,\s*)'([A-Za-z]+)'/g)) bare.push(`${f}: '${m[1]}'`);
    }
    assert.deepEqual(bare, [], 'failure types are written as Errors.<name> (src/contract/errors.ts), never as bare strings');
  });
});
