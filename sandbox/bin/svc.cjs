#!/usr/bin/env node
'use strict';
/*
 * Start, stop and check a sandbox service, like an init script:
 *
 *   node svc.cjs start  <name> <state-dir> [log-file]   start it detached (exit 0, also when already running)
 *   node svc.cjs stop   <name> <state-dir>              stop it: SIGTERM, then SIGKILL after 5 s (exit 0, also when not running)
 *   node svc.cjs status <name> <state-dir>              exit 0 when running, 3 when not (LSB)
 *
 * <state-dir>/<name>.pid holds the pid; <state-dir>/<name>.enabled exists from `start` to `stop`,
 * so a service that died (killed, host down) rather than being stopped is known to be wanted:
 * `switchyard sandbox up` starts those again and leaves stopped ones stopped.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const [cmd, name, stateDir, logArg] = process.argv.slice(2);
if (!['start', 'stop', 'status'].includes(cmd) || !name || !/^[A-Za-z0-9_.-]+$/.test(name) || !stateDir) {
  process.stderr.write('usage: svc.cjs start|stop|status <name> <state-dir> [log-file]\n');
  process.exit(2);
}
const serviceJs = path.join(__dirname, 'service.cjs');
const pidFile = path.join(stateDir, `${name}.pid`);
const enabledFile = path.join(stateDir, `${name}.enabled`);
const logFile = logArg || path.join(stateDir, `${name}.log`);

/** The service's pid when it is alive (not a zombie) and really is this service. */
function runningPid() {
  let pid;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    if (state === 'Z' || state === 'X') return null;
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(serviceJs) && argv.includes(name) ? pid : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (cmd === 'status') {
    const pid = runningPid();
    process.stdout.write(pid ? `${name}: running (pid ${pid})\n` : `${name}: stopped\n`);
    return pid ? 0 : 3;
  }
  if (cmd === 'start') {
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(enabledFile, '');
    const running = runningPid();
    if (running) {
      process.stdout.write(`${name}: already running (pid ${running})\n`);
      return 0;
    }
    const out = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, [serviceJs, name, stateDir], {
      cwd: stateDir,
      detached: true, // own session: survives the ssh session or shell that started it
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const tmp = `${pidFile}.${process.pid}`;
    fs.writeFileSync(tmp, `${child.pid}\n`);
    fs.renameSync(tmp, pidFile);
    child.unref();
    await sleep(150);
    const pid = runningPid();
    if (!pid) {
      let tail = '';
      try {
        tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-10).join('\n');
      } catch {}
      process.stderr.write(`${name}: did not stay up; log ${logFile}:\n${tail}\n`);
      return 1;
    }
    process.stdout.write(`${name}: started (pid ${pid})\n`);
    return 0;
  }
  // stop
  fs.rmSync(enabledFile, { force: true });
  const pid = runningPid();
  if (!pid) {
    fs.rmSync(pidFile, { force: true });
    process.stdout.write(`${name}: not running\n`);
    return 0;
  }
  try {
    process.kill(pid, 'SIGCONT'); // a paused service could not act on SIGTERM
    process.kill(pid, 'SIGTERM');
  } catch {}
  for (let i = 0; i < 100 && runningPid(); i++) await sleep(50);
  if (runningPid()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    for (let i = 0; i < 40 && runningPid(); i++) await sleep(50);
  }
  if (runningPid()) {
    process.stderr.write(`${name}: pid ${pid} did not stop\n`);
    return 1;
  }
  fs.rmSync(pidFile, { force: true });
  process.stdout.write(`${name}: stopped (was pid ${pid})\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${name}: ${err && err.message ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
