/** Reading the free space of a host's filesystem from the row `df -Pk` prints for it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDfAvailableKiB } from '../../src/activities/ssh/free-space';

describe('parseDfAvailableKiB', () => {
  it('reads the field before the capacity, whatever spaces the filesystem name or mount point hold', () => {
    assert.equal(parseDfAvailableKiB('/dev/nvme0n1p1  264212084 183427044  80768656      70% /'), 80768656);
    assert.equal(parseDfAvailableKiB('//nas/backups share 1000 400 600 40% /mnt/my backups'), 600);
    assert.equal(parseDfAvailableKiB('overlay 0 0 0 -% /proc/x'), 0);
  });
  it('null when there is no such row', () => {
    assert.equal(parseDfAvailableKiB(''), null);
    assert.equal(parseDfAvailableKiB('df: /nowhere: No such file or directory'), null);
    assert.equal(parseDfAvailableKiB('fs 10 5 lots 50% /'), null);
  });
});
