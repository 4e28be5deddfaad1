#!/usr/bin/env node
'use strict';
/*
 * Watches a process and takes its sandbox down when it dies without doing so itself (a test
 * process killed with SIGKILL, a crashed runner): started detached by test/support/sandbox.ts.
 * Plain JavaScript that reads /proc twice a second: a test starts one per sandbox, and loading
 * the sandbox's TypeScript for each would cost most of a CPU-second; only once the watched
 * process is gone does it run sandbox/reaper.ts, which takes the sandbox down. Its command line
 * names the sandbox dir, so a normal `down` sweeps the reaper away as well.
 *
 *   node sandbox/reaper.cjs <pid> <pid-start-time> <sandbox-dir>
 */
const { spawnSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const path = require('node:path');

const [pidText, startTime, dir] = process.argv.slice(2);
const pid = Number(pidText);
if (!Number.isInteger(pid) || pid <= 0 || !startTime || !dir || !path.isAbsolute(dir)) {
  process.stderr.write('usage: reaper.cjs <pid> <pid-start-time> <absolute sandbox dir>\n');
  process.exit(2);
}

/** The same process still runs: it exists, is no zombie, and started when it was recorded to. */
function alive() {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state …: comm may hold spaces and parentheses, so split after the last ")".
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] !== 'Z' && f[0] !== 'X' && f[19] === startTime;
  } catch (err) {
    return err.code !== 'ENOENT' && err.code !== 'ESRCH'; // cannot tell: keep watching
  }
}

const timer = setInterval(() => {
  if (alive()) return;
  clearInterval(timer);
  process.stderr.write(`reaper: pid ${pid} is gone; taking the sandbox in ${dir} down\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'reaper.ts'), dir], {
    cwd: path.join(__dirname, '..'),
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}, 500);
