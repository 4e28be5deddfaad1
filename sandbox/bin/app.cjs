#!/usr/bin/env node
'use strict';
/*
 * The sandbox's stand-in for a site's application (Cloud66's maintenance mode, checkable):
 * answers every request with 200 "<site> ok", or 503 "<site> maintenance" while the site's
 * maintenance flag file exists. Plain JavaScript so it runs with bare `node` as any user.
 *
 *   node app.cjs <site> <address> <port> <maintenance-flag-file>
 */
const http = require('node:http');
const fs = require('node:fs');

const [site, address, portText, flag] = process.argv.slice(2);
const port = Number(portText);
if (!site || !address || !Number.isInteger(port) || !flag) {
  process.stderr.write('usage: app.cjs <site> <address> <port> <maintenance-flag-file>\n');
  process.exit(2);
}

const stamp = () => new Date().toISOString();
let lastMode = null;
const server = http.createServer((req, res) => {
  const maintenance = fs.existsSync(flag);
  const mode = maintenance ? 'maintenance' : 'ok';
  if (mode !== lastMode) {
    process.stdout.write(`${stamp()} ${site} app: now ${mode}\n`);
    lastMode = mode;
  }
  const body = `${site} ${mode}\n`;
  res.writeHead(maintenance ? 503 : 200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.on('error', (err) => {
  process.stderr.write(`${stamp()} ${site} app: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, address, () => process.stdout.write(`${stamp()} ${site} app listening on http://${address}:${port}/ (pid ${process.pid})\n`));

const stop = (sig) => {
  process.stdout.write(`${stamp()} ${site} app: ${sig}, stopping\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
