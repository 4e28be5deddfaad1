/** Damage a backup the way a bad disk or a bad copy would: for the checksum tests. */
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';

/** Change one byte in the middle of a file: same size, different SHA-256. */
export function flipByte(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const at = Math.floor(statSync(path).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] ^= 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}
