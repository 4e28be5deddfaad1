#!/usr/bin/env node
'use strict';
/*
 * A long-running sandbox service (fault detection, notification …): it does nothing but stay
 * alive and say so in its log, so start/stop/status steps have a real process to act on.
 * Started by svc.cjs, never directly.
 *
 *   node service.cjs <name> <state-dir>
 */
const [name, stateDir] = process.argv.slice(2);
const stamp = () => new Date().toISOString();
process.stdout.write(`${stamp()} ${name}: running (pid ${process.pid}, state ${stateDir})\n`);
const beat = setInterval(() => process.stdout.write(`${stamp()} ${name}: alive\n`), 60_000);
const stop = (sig) => {
  clearInterval(beat);
  process.stdout.write(`${stamp()} ${name}: ${sig}, stopping\n`);
  process.exit(0);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGHUP', () => process.stdout.write(`${stamp()} ${name}: SIGHUP ignored\n`));
