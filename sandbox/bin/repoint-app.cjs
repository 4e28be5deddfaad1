#!/usr/bin/env node
'use strict';
/*
 * The sandbox's afterPromote hook "repoint-app": record which database a site's app should use
 * from now on, the way a real hook would rewrite the app's database setting and reload it.
 *
 *   node repoint-app.cjs <target-file> <address> <port>
 *   node repoint-app.cjs --check <target-file> <address> <port>   (exit 0: already points there)
 *
 * writes "<address>:<port>\n" to <target-file> (the app host's <host dir>/db-target) through a
 * temp file and a rename, and prints what it was before. A test reads the file to see that the
 * hook ran, on which host, and with which target.
 */
const fs = require('node:fs');
const path = require('node:path');

function main(argv) {
  // `--check`: the hook's check command: exit 0 when the file already names that target (the
  // hook's work is done and it is not run again), 1 otherwise.
  const check = argv[0] === '--check';
  if (check) argv = argv.slice(1);
  const [file, address, port] = argv;
  if (
    argv.length !== 3 ||
    !path.isAbsolute(file || '') ||
    !/^[A-Za-z0-9._:-]+$/.test(address || '') ||
    !/^\d{1,5}$/.test(port || '') ||
    Number(port) < 1 ||
    Number(port) > 65535
  ) {
    process.stderr.write('usage: repoint-app.cjs <target-file> <address> <port>\n');
    return 2;
  }
  let before = '';
  try {
    before = fs.readFileSync(file, 'utf8').trim();
  } catch {
    /* first time */
  }
  const target = `${address}:${port}`;
  if (check) {
    process.stdout.write(
      before === target ? `repoint-app: ${file} already names ${target}\n` : `repoint-app: ${file} names ${before || 'nothing'}, not ${target}\n`,
    );
    return before === target ? 0 : 1;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, `${target}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  process.stdout.write(`repoint-app: ${file} -> ${target}${before ? ` (was ${before})` : ''}\n`);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`repoint-app: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
