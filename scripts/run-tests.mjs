// Runs test files with node:test in the order given (the `node --test` command line sorts its
// files by name, so a list ordered longest first would start with activities-*): TAP to stdout,
// and each file's start, end and duration (scripts/file-times-reporter.mjs) to the file named by
// --times. The exit status is 1 when any test failed or was cancelled, as with `node --test`.
//
//   node --import tsx scripts/run-tests.mjs --concurrency 4 --timeout 900000 --times t.txt a.test.ts b.test.ts
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { run } from 'node:test';
import { tap } from 'node:test/reporters';
import { parseArgs } from 'node:util';
import fileTimes from './file-times-reporter.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { concurrency: { type: 'string', default: '1' }, timeout: { type: 'string', default: '900000' }, times: { type: 'string' } },
});
const number = (name, v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`run-tests: --${name} must be a whole number of at least 1, not "${v}"`);
  return n;
};
if (positionals.length === 0) throw new Error('run-tests: name the test files to run');

const events = run({
  files: positionals.map((f) => resolve(f)),
  concurrency: number('concurrency', values.concurrency),
  timeout: number('timeout', values.timeout),
});
events.on('test:fail', (ev) => {
  if (!ev.data?.todo) process.exitCode = 1;
});
const toTap = new PassThrough({ objectMode: true });
events.pipe(toTap);
toTap.compose(tap).pipe(process.stdout);
if (values.times) {
  const toTimes = new PassThrough({ objectMode: true });
  events.pipe(toTimes);
  toTimes.compose(fileTimes).pipe(createWriteStream(values.times));
}
