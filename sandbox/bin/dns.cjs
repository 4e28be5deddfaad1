#!/usr/bin/env node
'use strict';
/*
 * The sandbox's stand-in for the database's DNS record: one small file holding one line
 * "<site> <address>:<port>" (e.g. "dc1 127.0.1.1:5432"). The topology's "command" traffic driver
 * "dns" moves and reads it:
 *
 *   node dns.cjs set <record-file> <site> <address> <port>   point the record at a site (exit 0)
 *   node dns.cjs get <record-file>                           print the site it points at (exit 0;
 *                                                            1 when there is no well-formed record)
 *
 * `set` writes a temp file beside the record and renames it over the record, so a reader sees the
 * old record or the new one, never a half-written file.
 */
const fs = require('node:fs');
const path = require('node:path');

const RECORD_RE = /^([a-z0-9][a-z0-9_-]{0,62}) ([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

function usage() {
  process.stderr.write('usage: dns.cjs set <record-file> <site> <address> <port>\n       dns.cjs get <record-file>\n');
  return 2;
}

function readRecord(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { error: `cannot read ${file}: ${err.code || err.message}` };
  }
  const m = RECORD_RE.exec(text.trim());
  if (!m) return { error: `${file} holds no record "<site> <address>:<port>": ${JSON.stringify(text.trim().slice(0, 100))}` };
  return { site: m[1], address: m[2], port: Number(m[3]), line: text.trim() };
}

function writeAtomically(file, content) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function main(argv) {
  const [cmd, file, ...rest] = argv;
  if (!file || !path.isAbsolute(file)) return usage();
  if (cmd === 'get' && rest.length === 0) {
    const r = readRecord(file);
    if (r.error) {
      process.stderr.write(`dns: ${r.error}\n`);
      return 1;
    }
    process.stdout.write(`${r.site}\n`);
    return 0;
  }
  if (cmd === 'set' && rest.length === 3) {
    const [site, address, port] = rest;
    const line = `${site} ${address}:${port}`;
    const m = RECORD_RE.exec(line);
    if (!m || Number(port) < 1 || Number(port) > 65535) {
      process.stderr.write(`dns: not a record "<site> <address>:<port>": ${JSON.stringify(line)}\n`);
      return 2;
    }
    const before = readRecord(file);
    writeAtomically(file, `${line}\n`);
    process.stdout.write(`dns: ${path.basename(file)} -> ${line}${before.line ? ` (was ${before.line})` : ''}\n`);
    return 0;
  }
  return usage();
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`dns: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
