/**
 * The console in a real browser (Debian's Chromium through playwright-core) against a sandbox
 * failover with dc1 killed and a policy of two approvals from "@dba" or carol, the starter barred:
 * a person signs in, sees the run waiting at old-primary-dead with its prompt and the live facts
 * (dc1-db does not answer), presses Reject and the run stops with nothing promoted; a second run:
 * the starter's Approve is refused on the page with the reason, bob's counts as one of two,
 * carol's completes it and the page shows the run COMPLETED, dc2 the primary. Screenshots of the
 * waiting page go to test-artifacts/.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { stopPart } from '../../sandbox';
import { sandboxPassword } from '../../sandbox/access';
import { startConsole, type RunningConsole } from '../../src/client/console/server';
import { loadTools } from '../../src/tools';
import type { FailoverResult } from '../../src/workflows/failover';
import type { Progress } from '../../src/contract/messages';
import { startStage, type Stage } from '../support/stage';

const ARTIFACTS = resolve(__dirname, '../../test-artifacts');
const chromiumPath = loadTools().chromium;

describe(
  'the console in a browser: approve and reject a sandbox failover',
  { skip: chromiumPath ? false : "no Chromium (scripts/setup.sh installs Debian's `chromium` when it runs as root)" },
  () => {
    let st: Stage;
    let web: RunningConsole;
    let browser: Browser;
    before(async () => {
      st = await startStage({
        edit: (c) => {
          c.checkpoints = {
            approvers: ['@dba', 'carol'],
            twoPerson: true,
            remindAfter: '15m',
            deadline: '1h',
            approvals: { 'old-primary-dead': { approvals: 2 } },
          };
        },
      });
      web = await startConsole({ configPath: st.configPath, target: st.target, log: () => undefined });
      browser = await chromium.launch({ executablePath: chromiumPath!, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
      // A readiness run records the primary's position, so the failover can measure what is lost (nothing).
      await (await st.start('readiness', { cluster: 'demo' })).result();
      await stopPart(st.sb.opts, 'dc1-db', 'kill');
    });
    after(async () => {
      await browser?.close();
      await web?.close();
      await st?.down();
    });

    async function signIn(name: string): Promise<Page> {
      const ctx = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
      const page = await ctx.newPage();
      await page.goto(`${web.url}/`);
      assert.match(page.url(), /\/login\?next=/);
      await page.fill('input[name=name]', name);
      await page.fill('input[name=password]', sandboxPassword(st.sb.status.console.operators, name));
      await Promise.all([page.waitForURL(`${web.url}/`), page.click('button[type=submit]')]);
      assert.equal(await page.textContent('#operator'), name);
      return page;
    }

    async function waitingFailover(id: string): Promise<void> {
      await st.start('failover', { cluster: 'demo', requestedBy: 'alice', reason: 'dc1 lost power (browser test)' }, id);
      await st.waitProgress(id, (p) => p.waitingFor === 'old-primary-dead', 'waiting at old-primary-dead', 120_000);
    }

    /** The run's result once it closed; a run still going after two minutes fails with its step log. */
    async function finished(id: string): Promise<FailoverResult> {
      const h = st.client.workflow.getHandle(id);
      for (let i = 0; i < 240; i++) {
        if ((await h.describe()).status.name !== 'RUNNING') return (await h.result()) as FailoverResult;
        await new Promise((r) => setTimeout(r, 500));
      }
      const p = await h.query<Progress>('progress');
      assert.fail(`${id} still runs: ${p.steps.map((s) => `${s.state} ${s.name}: ${s.detail}`).join('\n')}`);
    }

    async function openCheckpoint(page: Page, id: string): Promise<void> {
      // From the list of waiting runs, as a person would.
      await page.goto(`${web.url}/`);
      await page.click(`article[data-workflow-id="${id}"] a`);
      await page.waitForURL(`${web.url}/runs/${id}/checkpoints/old-primary-dead`);
    }

    it('Reject stops the run, nothing promoted', async () => {
      const id = `console-reject-${Date.now()}`;
      await waitingFailover(id);
      const bob = await signIn('bob');
      await openCheckpoint(bob, id);
      assert.match((await bob.textContent('#prompt')) ?? '', /dc1-db/);
      assert.match((await bob.textContent('#facts')) ?? '', /dc1-db: does not answer/);
      await bob.fill('textarea[name=comment]', 'not sure dc1 is off');
      await bob.click('button.reject');
      await bob.waitForSelector('#answer.ok');
      assert.equal(await bob.textContent('#answer'), 'accepted: reject');
      const result = await finished(id);
      assert.equal(result.outcome, 'aborted');
      assert.match(result.abortedBecause ?? '', /old-primary-dead rejected by bob/);
      const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS ro');
      assert.equal(dc2.ro, true, 'dc2 is still a standby: nothing was promoted');
      // the page follows the run: it reloads once the run has closed
      await bob.locator('#status', { hasText: /COMPLETED/ }).waitFor({ timeout: 20_000 });
      // Every cluster's readiness on one page: demo is not ready, its primary does not answer.
      await bob.click('nav a[href="/clusters"]');
      const demo = (await bob.textContent('#cluster-demo')) ?? '';
      assert.match(demo, /NOT READY — primary none/);
      assert.match(demo, /FAIL/);
      await bob.context().close();
    });

    it('the starter is refused on the page; two approvals complete the failover, shown as it happens', async () => {
      const id = `console-approve-${Date.now()}`;
      await waitingFailover(id);
      const alice = await signIn('alice');
      await openCheckpoint(alice, id);
      mkdirSync(ARTIFACTS, { recursive: true });
      await alice.screenshot({ path: join(ARTIFACTS, 'console-waiting.png'), fullPage: true });
      if (process.env.SWITCHYARD_README_SCREENSHOT) await alice.screenshot({ path: process.env.SWITCHYARD_README_SCREENSHOT, fullPage: false });
      assert.match((await alice.textContent('#approvals')) ?? '', /^0 of 2 approvals; may decide: alice, bob, carol; not alice, who started it/);
      await alice.click('button.approve');
      await alice.waitForSelector('#answer.error');
      assert.equal(
        await alice.textContent('#answer'),
        'refused: "alice" started this run and may not approve its safety checkpoint "old-primary-dead" (two-person rule): another approver must',
      );

      const bob = await signIn('bob');
      await openCheckpoint(bob, id);
      await bob.fill('textarea[name=comment]', 'iLO: powered off');
      await bob.click('button.approve');
      await bob.waitForSelector('#answer.ok');
      assert.equal(await bob.textContent('#answer'), 'accepted: approve (1 of 2 approvals)');
      // alice's page updates by itself with bob's approval
      await alice.locator('#approvals', { hasText: /^1 of 2 approvals \(bob\)/ }).waitFor({ timeout: 20_000 });

      const carol = await signIn('carol');
      await openCheckpoint(carol, id);
      await carol.click('button.approve');
      await carol.waitForSelector('#answer.ok');
      // Then what may be lost: the last reading of dc1's position is older than the freshness
      // bound, so 0 bytes is only a lower bound; carol's page moves on to that checkpoint.
      await st.waitProgress(id, (p) => p.waitingFor === 'accept-data-loss', 'waiting at accept-data-loss', 60_000);
      await carol.locator('#status', { hasText: /waiting at accept-data-loss/ }).waitFor({ timeout: 20_000 });
      await carol.click('#status a');
      await carol.waitForURL(`${web.url}/runs/${id}/checkpoints/accept-data-loss`);
      assert.match((await carol.textContent('#prompt')) ?? '', /only a lower bound/);
      assert.match((await carol.textContent('#facts')) ?? '', /primary: none answers as primary/);
      await carol.fill('textarea[name=comment]', 'no writes since the outage began');
      await carol.click('button.approve');
      await carol.waitForSelector('#answer.ok');
      const result = await finished(id);
      assert.equal(result.outcome, 'completed', result.abortedBecause ?? '');
      const [dc2] = await st.nodeQuery('dc2-db', 'SELECT pg_is_in_recovery() AS ro');
      assert.equal(dc2.ro, false, 'dc2 is the primary');
      await carol.goto(`${web.url}/runs/${id}`);
      assert.match((await carol.textContent('#status')) ?? '', /COMPLETED \(completed\)/);
      const decisions = (await carol.textContent('table')) ?? '';
      assert.match(decisions, /old-primary-dead\s*approve\s*bob, carol/);
      assert.match(decisions, /accept-data-loss\s*approve\s*carol/);
      for (const p of [alice, bob, carol]) await p.context().close();
    });
  },
);
