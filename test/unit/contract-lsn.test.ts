/** LSN arithmetic: a WAL position read as its two 32-bit halves, and the distance between two. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lsnDiff, lsnToBigInt } from '../../src/contract/lsn';

describe('LSN arithmetic', () => {
  it('reads the two 32-bit halves', () => {
    assert.equal(lsnToBigInt('0/0'), 0n);
    assert.equal(lsnToBigInt('1/0'), 4294967296n);
    assert.equal(lsnToBigInt('16/B374D848'), 0x16n * 4294967296n + 0xb374d848n);
    assert.equal(lsnDiff('1/10', '0/FFFFFFF0'), 32);
    assert.equal(lsnDiff('0/10', '0/20'), -16);
    assert.throws(() => lsnToBigInt('nonsense'), /not an LSN/);
  });
});
