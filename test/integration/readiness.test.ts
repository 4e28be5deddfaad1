/**
 * `switchyard check` against the sandbox, run as an operator runs it (the CLI in a subprocess):
 * a healthy sandbox is ready with dc1 primary; a stopped standby, a stopped sshd and a host key
 * that does not match the pinned one each make it not ready, with the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { startPart, stopPart } from '../../sandbox';
import type { ReadinessReport } from '../../src/contract/readiness';
import { startTestSandbox, type TestSandbox } from '../support/sandbox';
import { loadTools } from '../../src/tools';

const bin = join(__dirname, '../../bin/switchyard.js');

function check(sb: TestSandbox, configPath = sb.status.config): Promise<{ code: number | null; report: ReadinessReport; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, 'check', 'demo', '--json', '--config', configPath], {
      env: { ...process.env, TEMPORAL_ADDRESS: sb.status.temporal.address, SWITCHYARD_CONFIG: '' },
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      try {
        resolve({ code, report: JSON.parse(out) as ReadinessReport, stderr: err });
      } catch {
        reject(new Error(`check printed no JSON (exit ${code}):\n${out}\n${err}`));
      }
    });
  });
}

const failedChecks = (r: ReadinessReport) => Object.fromEntries(r.checks.filter((c) => !c.ok).map((c) => [c.name, c.detail]));

describe('switchyard check against the sandbox', () => {
  let sb: TestSandbox;
  before(async () => {
    sb = await startTestSandbox();
  });
  after(async () => {
    await sb?.down();
  });

  it('a healthy sandbox is ready: dc1 primary and writable, dc2 streaming, traffic on dc1', async () => {
    const { code, report, stderr } = await check(sb);
    assert.deepEqual(failedChecks(report), {}, stderr);
    assert.equal(code, 0);
    assert.equal(report.ready, true);
    assert.equal(report.primarySite, 'dc1');
    assert.equal(report.standbySite, 'dc2');
    assert.equal(typeof report.lagBytes, 'number');
    assert.ok(report.lagBytes! <= 16 * 1024 * 1024);
    assert.equal(report.traffic.front.site, 'dc1');
    assert.equal(report.traffic.eip.site, 'dc1');
    assert.equal(report.traffic.vip.site, 'dc1');
    assert.equal(report.traffic.vip.kind, 'private-ip');
    assert.equal(report.traffic.dns.site, 'dc1');
    assert.equal(report.traffic.dns.kind, 'command');
    assert.deepEqual(Object.keys(report.traffic), ['front', 'eip', 'vip', 'dns']);
    const names = report.checks.map((c) => c.name);
    for (const n of [
      'primary',
      'primary-writable',
      'standby:dc2-db',
      'lag:dc2-db',
      'slot:dc2-db',
      'ssh:dc1-db',
      'ssh:dc2-app',
      'service:dc1/fault-detection',
      'service:dc2/notification',
      'maintenance:dc1',
      'traffic:front',
      'traffic:eip',
      'traffic:vip',
      'traffic:dns',
      'ec2:dc1-db',
      'ec2:dc2-db',
    ])
      assert.ok(names.includes(n), `check ${n} present in ${names.join(', ')}`);
  });

  it('the standby PostgreSQL stopped: not ready, and the report says why', async () => {
    await stopPart(sb.opts, 'dc2-db/postgres');
    try {
      const { code, report } = await check(sb);
      assert.equal(code, 1);
      assert.equal(report.ready, false);
      assert.equal(report.primarySite, 'dc1');
      const failed = failedChecks(report);
      assert.match(failed['standby:dc2-db'] ?? '', /^dc2-db \(dc2\) is unreachable: .*(ECONNREFUSED|refused)/);
      assert.match(failed['slot:dc2-db'] ?? '', /inactive/);
    } finally {
      await startPart(sb.opts, 'dc2-db/postgres');
    }
  });

  it('a host whose sshd is stopped is reported unreachable', async () => {
    await stopPart(sb.opts, 'dc2-app/sshd');
    try {
      const { code, report } = await check(sb);
      assert.equal(code, 1);
      const c = report.checks.find((x) => x.name === 'ssh:dc2-app');
      assert.equal(c?.ok, false);
      const ssh = report.observations.ssh.find((s) => s.host === 'dc2-app');
      assert.equal(ssh?.outcome, 'unreachable');
      assert.equal(report.checks.find((x) => x.name === 'ssh:dc1-app')?.ok, true, 'the other hosts still answer');
      // The dns driver's one host is dc2-app: its record cannot be read while that host is down.
      assert.equal(report.traffic.dns.site, null);
      assert.match(failedChecks(report)['traffic:dns'] ?? '', /cannot read/);
      assert.equal(report.traffic.vip.site, 'dc1', 'the other drivers still read');
    } finally {
      await startPart(sb.opts, 'dc2-app/sshd');
    }
  });

  it('a host key that does not match the pinned one is refused', async () => {
    // A topology that pins a different key for dc1-db than the one its sshd presents.
    const keyFile = join(sb.opts.dir!, 'not-the-host-key');
    execFileSync(loadTools().sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const otherKey = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const doc = parseDocument(readFileSync(sb.status.config, 'utf8'));
    assert.notEqual(doc.getIn(['clusters', 'demo', 'hosts', 'dc1-db', 'hostKey']), otherKey);
    doc.setIn(['clusters', 'demo', 'hosts', 'dc1-db', 'hostKey'], otherKey);
    const edited = join(sb.opts.dir!, 'wrong-key.yaml');
    writeFileSync(edited, doc.toString());
    const { code, report } = await check(sb, edited);
    assert.equal(code, 1);
    const ssh = report.observations.ssh.find((s) => s.host === 'dc1-db');
    assert.equal(ssh?.outcome, 'host-key-mismatch');
    assert.match(ssh?.detail ?? '', /host key mismatch for dc1-db .*presented SHA256:\S+ pinned SHA256:\S+/);
    assert.equal(report.checks.find((x) => x.name === 'ssh:dc1-db')?.ok, false);
    assert.equal(report.checks.find((x) => x.name === 'ssh:dc2-db')?.ok, true);
  });

  it('after the faults are undone the sandbox is ready again', async () => {
    const { code, report } = await check(sb);
    assert.deepEqual(failedChecks(report), {});
    assert.equal(code, 0);
  });
});
