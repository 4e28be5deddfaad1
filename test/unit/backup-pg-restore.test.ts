/** What a restore needs free beside the data directory (restoreSpaceNeeded), without a host. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restoreSpaceNeeded } from '../../src/activities/backup/pg-restore-plan';
import { FREE_SPACE_RESERVE_MIN_BYTES } from '../../src/activities/ssh/free-space';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('restoreSpaceNeeded', () => {
  it('the copy, then an extraction the size of the databases, plus a 5% reserve', () => {
    const s = restoreSpaceNeeded({ totalBytes: 2 * GiB, databaseBytes: 10 * GiB }, 2 * GiB);
    assert.equal(s.needBytes, 12 * GiB);
    assert.equal(s.reserveBytes, Math.ceil(12 * GiB * 0.05));
    assert.match(s.how, /^2\.00 GiB to copy \+ 10\.00 GiB to extract \(the databases' size when backed up\) \+ a reserve of 614\.4 MiB$/);
  });

  it('files already staged are not counted again; the extraction still is', () => {
    const s = restoreSpaceNeeded({ totalBytes: 2 * GiB, databaseBytes: 10 * GiB }, 0);
    assert.equal(s.needBytes, 10 * GiB);
  });

  it("without the databases' size, at least the compressed size is assumed for the extraction", () => {
    const s = restoreSpaceNeeded({ totalBytes: 300 * MiB, databaseBytes: null }, 300 * MiB);
    assert.equal(s.needBytes, 600 * MiB);
    assert.match(s.how, /at least the compressed size/);
    // A databases' size below the compressed size (an odd manifest) is not believed either.
    assert.equal(restoreSpaceNeeded({ totalBytes: 300 * MiB, databaseBytes: 1 }, 0).needBytes, 300 * MiB);
  });

  it('a small restore keeps at least the minimum reserve', () => {
    const s = restoreSpaceNeeded({ totalBytes: 3 * MiB, databaseBytes: 20 * MiB }, 3 * MiB);
    assert.equal(s.needBytes, 23 * MiB);
    assert.equal(s.reserveBytes, FREE_SPACE_RESERVE_MIN_BYTES);
  });
});
