/**
 * A failover that promoted but could not finish, finished by starting it again with `--to` the
 * promoted site (issue 11): on the sandbox, dc2's hook and DNS move fail until a flag file exists
 * (their commands are wrapped by a test edit of the topology, as a broken hook or an unreachable
 * DNS API would fail), so the first run promotes dc2 and ends FailoverIncomplete naming the
 * command; once the flag exists, `failover --to dc2` finds dc2 promoted and dc1 fenced, and does
 * the hook and the traffic move it left, without fencing or promoting again.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import { failureOf, stepsNamed, timelineOf } from '../support/runs';
import { startStage, type Stage } from '../support/stage';

/** argv run only once `flag` exists: `sh -c 'test -e "$0" && exec "$@"' flag argv…`. */
const gated = (flag: string, argv: string[]) => ['sh', '-c', 'test -e "$0" || { echo "test: $0 is missing" >&2; exit 1; }; exec "$@"', flag, ...argv];

describe("failover: promoted, but the new site's hook and DNS move failed; started again with --to it finishes", () => {
  let st: Stage;
  let flag = '';
  before(async () => {
    st = await startStage({
      edit: (c) => {
        const dir = (c.postgres as { nodes: Record<string, { dataDir: string }> }).nodes['dc2-db'].dataDir;
        flag = join(dir, '..', 'resume-ok');
        const dc2 = (c.sites as Record<string, { hooks: { afterPromote: { command: string[] }[] } }>).dc2;
        dc2.hooks.afterPromote[0].command = gated(flag, dc2.hooks.afterPromote[0].command);
        const dns = (c.traffic as { kind: string; move: string[] }[]).find((d) => d.kind === 'command')!;
        dns.move = gated(flag, dns.move);
      },
    });
  });
  after(async () => {
    await st?.down();
  });

  it('the first run fails naming `switchyard failover demo --to dc2`; that run finds dc2 promoted and does the hook and traffic left', async () => {
    const tl = await timelineOf(st, 'dc2-db');
    const h = await st.start('failover', { cluster: 'demo', requestedBy: 'alice' }, `failover-incomplete-${Date.now()}`);
    const f = await failureOf(h.result());
    assert.equal(f.type, 'FailoverIncomplete');
    assert.match(
      f.message,
      /promoted dc2-db but did not finish: .*hook repoint-app.*traffic driver dns.*Fix these, then run `switchyard failover demo --to dc2`/,
    );
    const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS standby');
    assert.equal(dc2.standby, false, 'dc2 was promoted');
    const dns = st.cluster.traffic.find((d) => d.kind === 'command')!;
    const record = dns.kind === 'command' ? dns.read[dns.read.length - 1] : '';
    assert.match(readFileSync(record, 'utf8'), /^dc1 /, 'the DNS record was not moved');
    const hook = st.cluster.sites.dc2.hooks.afterPromote[0];
    const target = hook.command[hook.command.length - 3];

    writeFileSync(flag, 'ok\n');
    const again = await st.start('failover', { cluster: 'demo', requestedBy: 'bob', to: 'dc2' }, `failover-finish-${Date.now()}`);
    const r = (await again.result()) as FailoverResult;
    assert.equal(r.outcome, 'completed', r.state);
    assert.deepEqual(r.to, { site: 'dc2', node: 'dc2-db' });
    assert.deepEqual(r.checkpoints, [], 'finishing needs no decision: the old primary is fenced');
    assert.equal(await timelineOf(st, 'dc2-db'), tl + 1, 'not promoted a second time');
    assert.equal(readFileSync(record, 'utf8').trim(), `dc2 ${st.cluster.postgres.nodes['dc2-db'].host}:5432`, 'the DNS record names dc2 now');
    assert.equal(readFileSync(target, 'utf8').trim(), `${st.cluster.postgres.nodes['dc2-db'].host}:5432`, "the hook repointed dc2's app");
    for (const svc of Object.keys(st.cluster.sites.dc2.services)) assert.equal(await st.serviceRunning('dc2', svc), true, `${svc} runs at dc2`);
    assert.deepEqual(await st.maintenance('dc2'), { on: false, http: 200 });
    const [w] = await st.frontQuery(`INSERT INTO public.sandbox_rows (note) VALUES ('after finishing') RETURNING host(inet_server_addr()) AS server`);
    assert.equal(w.server, st.cluster.postgres.nodes['dc2-db'].host);
    const p = await again.query<Progress>('progress');
    assert.match(stepsNamed(p, /^resume$/)[0]?.detail ?? '', /dc2-db \(dc2\) is already primary .*finishing the steps after promotion/);
    assert.equal(stepsNamed(p, /^(promote|fence)$/).length, 0, 'nothing was fenced or promoted again');
    assert.match(stepsNamed(p, /^traffic:front$/)[0]?.detail ?? '', /already on dc2/);
    // The former primary stays fenced and watched.
    assert.ok(existsSync(join(st.cluster.postgres.nodes['dc1-db'].dataDir, 'switchyard-fence.json')));
    assert.equal(stepsNamed(p, /^guard$/)[0]?.state, 'done');
  });
});
