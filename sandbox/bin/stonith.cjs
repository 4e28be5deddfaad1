#!/usr/bin/env node
'use strict';
/*
 * The sandbox's power switch for one host (STONITH: "shoot the other node in the head"), what a
 * BMC, a PDU or a cloud API's forced stop is in production:
 *
 *   node stonith.cjs <host-dir>
 *
 * SIGKILLs every process started for that host (those whose command line names a path under
 * <host-dir>: its sshd, its PostgreSQL postmaster) and every descendant of them (the backends,
 * the walsender, SSH sessions), paused ones too: SIGKILL needs no cooperation. Exits 0 once none
 * is left ("powered off"), 1 when some survive, 2 on bad usage. It leaves <host-dir>/powered-off:
 * like a machine whose power was cut, the host does not come back by itself (`sandbox up` and
 * startPart leave it stopped) until the sandbox's powerOn removes the flag.
 */
const fs = require('node:fs');
const path = require('node:path');

function procs() {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so split after the last ")".
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(d), ppid: Number(rest[1]), state: rest[0], cmdline });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return out;
}

function hostProcesses(dir) {
  const all = procs();
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const roots = all.filter((p) => p.pid !== process.pid && p.cmdline.some((a) => a.startsWith(prefix) || a === dir));
  const found = new Set(roots.map((p) => p.pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) if (!found.has(p.pid) && found.has(p.ppid) && p.pid !== process.pid) (found.add(p.pid), (grew = true));
  }
  return [...found].filter((pid) => all.find((p) => p.pid === pid)?.state !== 'Z');
}

function main(argv) {
  if (argv.length !== 1 || !path.isAbsolute(argv[0])) {
    process.stderr.write('usage: stonith.cjs <absolute host directory>\n');
    return 2;
  }
  const dir = path.resolve(argv[0]);
  const deadline = Date.now() + 10_000;
  let killed = 0;
  for (;;) {
    const left = hostProcesses(dir);
    if (left.length === 0) {
      // Cut power stays cut: the sandbox does not start this host again until it is powered on.
      fs.writeFileSync(path.join(dir, 'powered-off'), `${new Date().toISOString()}\n`);
      process.stdout.write(`powered off ${path.basename(dir)}: ${killed} processes killed\n`);
      return 0;
    }
    if (Date.now() > deadline) {
      process.stderr.write(`${left.length} processes of ${path.basename(dir)} survive: ${left.join(' ')}\n`);
      return 1;
    }
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        /* already gone */
      }
    }
    const until = Date.now() + 50;
    while (Date.now() < until) {
      /* let the kernel reap */
    }
  }
}

process.exitCode = main(process.argv.slice(2));
