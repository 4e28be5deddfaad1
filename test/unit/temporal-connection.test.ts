/**
 * A call retried after its connection was closed: with the SDK's retry interceptor alone, the
 * retry timer throws "Channel has been shut down" as an uncaught exception once the caller is
 * done; with switchyard's connection options the retry goes nowhere and the process goes on. Each case runs in its
 * own process (an uncaught exception would end this one), against an address nothing listens on.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

const REPO = resolve(__dirname, '../..');

function closeWhileRetrying(guarded: boolean): { code: number | null; out: string } {
  const script = `
    const { Connection, Client } = require('@temporalio/client');
    const { clientConnectionOptions } = require('./src/temporal-connection');
    process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message); process.exit(3); });
    (async () => {
      const conn = Connection.lazy(${guarded ? "clientConnectionOptions('127.0.0.1:1')" : "{ address: '127.0.0.1:1' }"});
      const call = new Client({ connection: conn }).workflow.getHandle('x').describe().then(() => 'answered', () => 'failed');
      await new Promise((r) => setTimeout(r, 300)); // the first attempt failed: a retry is scheduled
      await conn.close();
      // The retry timer fires meanwhile; the call, whose connection is gone, no longer answers.
      console.log('call ' + (await Promise.race([call, new Promise((r) => setTimeout(() => r('unanswered'), 2500))])));
    })();`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('Temporal client connections', () => {
  it('without the guard, a retry after close is an uncaught exception (the SDK behaviour guarded against)', () => {
    const r = closeWhileRetrying(false);
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, /uncaught: Channel has been shut down/);
  });
  it('with clientConnectionOptions, the retry after close goes nowhere and the process goes on', () => {
    const r = closeWhileRetrying(true);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /call unanswered/);
    assert.doesNotMatch(r.out, /uncaught/);
  });
});
