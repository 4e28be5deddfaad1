/**
 * The console's JSON API and pages on a real Temporal dev server, against a run waiting at a
 * checkpoint whose policy needs two signed approvals and bars the starter: 401 without a session
 * (and nothing changes), CSRF and cross-origin writes refused, the name in a decision taken from
 * the session (a body's "by" ignored), approvals counted by distinct operators, the starter's
 * refused with the reason, sign-in failures rate-limited, and the HTML pages behind the sign-in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { startConsole, type RunningConsole } from '../../src/client/console/server';
import { hashPassword } from '../../src/client/passwords';
import { generateSigningKey } from '../../src/client/signing';
import type { Progress } from '../../src/contract/messages';
import type { CheckpointOutcome, CheckpointPolicy } from '../../src/workflows/lib/checkpoint';
import { startTestTemporal } from '../support/temporal';
import { topologyInput } from '../support/topology';

const PASSWORDS = { alice: 'alice-correct-horse', bob: 'bob-correct-horse-2', carol: 'carol-correct-horse' };

class Browser {
  cookie = '';
  csrf = '';
  constructor(readonly base: string) {}
  async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: any; text: string; headers: Headers }> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      redirect: 'manual',
      headers: {
        ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
        ...(typeof body === 'string' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...(this.cookie ? { cookie: this.cookie } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const set = res.headers.get('set-cookie');
    if (set) this.cookie = set.split(';')[0];
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: res.status, json, text, headers: res.headers };
  }
  async login(name: keyof typeof PASSWORDS): Promise<void> {
    const r = await this.call('POST', '/api/login', { name, password: PASSWORDS[name] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.operator, name);
    this.csrf = r.json.csrfToken;
  }
  decide(id: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    return this.call('POST', `/api/runs/${id}/checkpoints/old-primary-dead`, body, { 'x-csrf-token': this.csrf, ...headers });
  }
}

describe('console API and pages (real Temporal dev server)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let consoleRun: RunningConsole;
  let dir: string;
  let configPath: string;
  let policy: CheckpointPolicy;
  const taskQueue = `console-${randomUUID()}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-test-console-'));
    const key = generateSigningKey();
    writeFileSync(join(dir, 'console.key'), key.privatePem, { mode: 0o600 });
    const operators = Object.fromEntries(await Promise.all(Object.entries(PASSWORDS).map(async ([n, pw]) => [n, { password: await hashPassword(pw) }])));
    configPath = join(dir, 'switchyard.yaml');
    writeFileSync(
      configPath,
      stringify(
        topologyInput(
          {
            checkpoints: {
              approvers: ['alice', 'bob', 'carol'],
              twoPerson: true,
              verifiedDecisions: 'required',
              approvals: { 'old-primary-dead': { approvals: 2 } },
            },
          },
          { operators, console: { signingKey: { file: join(dir, 'console.key') }, publicKey: key.publicKey } },
        ),
      ),
    );
    policy = {
      approvers: ['alice', 'bob', 'carol'],
      twoPerson: true,
      remindAfterSeconds: 3600,
      deadlineSeconds: 7200,
      verifiedDecisions: 'required',
      approvals: { 'old-primary-dead': { approvals: 2, approvers: ['alice', 'bob', 'carol'] } },
      keys: { console: key.publicKey },
      consoleUrl: 'http://console.test',
    };
    env = await startTestTemporal();
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/checkpoint-workflows'), logger: new DefaultLogger('WARN') });
    worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: { notifyProbe: async () => undefined } });
    running = worker.run();
    consoleRun = await startConsole({ configPath, target: { address: env.address, namespace: 'default' }, listen: '127.0.0.1:0', log: () => undefined });
  });
  after(async () => {
    await consoleRun?.close();
    worker?.shutdown();
    await running;
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  async function waitingRun(): Promise<WorkflowHandle> {
    const h = await env.client.workflow.start('checkpointProbe', {
      taskQueue,
      workflowId: `console-probe-${randomUUID()}`,
      args: [{ startedBy: 'alice', requestedBy: 'alice', reason: 'dc1 lost power', policy, safety: true }],
    });
    for (let i = 0; i < 100; i++) {
      if ((await h.query<Progress>('progress')).waitingFor) return h;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the run never reached its checkpoint');
  }
  const approvals = async (h: WorkflowHandle) => (await h.query<Progress>('progress')).waiting?.approvals ?? [];

  it('without a session: 401 on the API, a sign-in redirect for pages, and nothing changes', async () => {
    const h = await waitingRun();
    const anon = new Browser(consoleRun.url);
    assert.equal((await anon.call('GET', '/api/checkpoints')).status, 401);
    const r = await anon.call('POST', `/api/runs/${h.workflowId}/checkpoints/old-primary-dead`, { decision: 'approve' });
    assert.equal(r.status, 401);
    assert.match(r.json.error, /sign in first/);
    const page = await anon.call('GET', `/runs/${h.workflowId}/checkpoints/old-primary-dead`);
    assert.equal(page.status, 303);
    assert.equal(page.headers.get('location'), `/login?next=${encodeURIComponent(`/runs/${h.workflowId}/checkpoints/old-primary-dead`)}`);
    assert.deepEqual(await approvals(h), []);
    const wrong = await anon.call('POST', '/api/login', { name: 'bob', password: 'not his' });
    assert.deepEqual([wrong.status, wrong.json], [401, { error: 'wrong name or password' }]);
    await h.terminate('test over');
  });

  it('lists the waiting run; refuses writes without the CSRF token or from another origin; takes the name from the session, counts distinct operators, refuses the starter', async () => {
    const h = await waitingRun();
    const bob = new Browser(consoleRun.url);
    await bob.login('bob');
    const list = (await bob.call('GET', '/api/checkpoints')).json as Record<string, unknown>[];
    const mine = list.find((w) => w.workflowId === h.workflowId);
    assert.ok(mine, JSON.stringify(list));
    assert.deepEqual(
      [mine.cluster, mine.operation, mine.checkpoint, mine.requestedBy, mine.reason, mine.required, mine.eligible, mine.approvals],
      ['demo', 'probe', 'old-primary-dead', 'alice', 'dc1 lost power', 2, ['alice', 'bob', 'carol'], []],
    );
    assert.match(String(mine.prompt), /ensure that the initial machine actually is dead/);
    assert.ok(Date.parse(String(mine.deadline)) > Date.parse(String(mine.startedAt)));

    assert.equal((await bob.decide(h.workflowId, { decision: 'approve' }, { 'x-csrf-token': '' })).status, 403);
    assert.equal((await bob.decide(h.workflowId, { decision: 'approve' }, { 'x-csrf-token': 'forged' })).status, 403);
    const cross = await bob.decide(h.workflowId, { decision: 'approve' }, { origin: 'https://evil.example' });
    assert.deepEqual([cross.status, cross.json.error], [403, 'cross-origin write refused (Origin https://evil.example)']);
    assert.deepEqual(await approvals(h), []);

    // "by" in the body is ignored: the approval is bob's, signed by the console
    const first = await bob.decide(h.workflowId, { decision: 'approve', by: 'carol', comment: 'iLO says off' });
    assert.deepEqual(first.json, { outcome: 'accepted', approvals: 1, required: 2, decided: false });
    assert.deepEqual(
      (await approvals(h)).map((a) => [a.by, a.verifiedBy, a.comment]),
      [['bob', 'console', 'iLO says off']],
    );
    const again = await bob.decide(h.workflowId, { decision: 'approve' });
    assert.deepEqual(again.json, { outcome: 'refused', reason: '"bob" already approved "old-primary-dead" (1 of 2): another approver must' });
    const alice = new Browser(consoleRun.url);
    await alice.login('alice');
    const own = await alice.decide(h.workflowId, { decision: 'approve' });
    assert.deepEqual(own.json, {
      outcome: 'refused',
      reason: '"alice" started this run and may not approve its safety checkpoint "old-primary-dead" (two-person rule): another approver must',
    });
    // an unsigned decision (the raw Temporal UI signal) does not count under this policy
    await h.signal('decision', { checkpoint: 'old-primary-dead', decision: 'approve', by: 'carol' });
    for (let i = 0; i < 50 && !(await h.query<Progress>('progress')).steps.some((s) => s.name === 'decision:old-primary-dead'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const refusedSignal = (await h.query<Progress>('progress')).steps.find((s) => s.name === 'decision:old-primary-dead');
    assert.match(refusedSignal?.detail ?? '', /^refused approve from carol: this cluster accepts only verified decisions: approve in the console/);
    assert.equal((await approvals(h)).length, 1);

    const carol = new Browser(consoleRun.url);
    await carol.login('carol');
    assert.deepEqual((await carol.decide(h.workflowId, { decision: 'approve' })).json, { outcome: 'accepted', approvals: 2, required: 2, decided: true });
    const o = (await h.result()) as CheckpointOutcome;
    assert.deepEqual(
      o.approvals?.map((a) => [a.by, a.verifiedBy]),
      [
        ['bob', 'console'],
        ['carol', 'console'],
      ],
    );
    const run = (await carol.call('GET', `/api/runs/${h.workflowId}`)).json;
    assert.equal(run.status, 'COMPLETED');
    assert.equal(run.input.requestedBy, 'alice');
    assert.match(
      run.progress.steps.find((s: { name: string }) => s.name === 'checkpoint:old-primary-dead').detail,
      /^approved by bob \(signed in at the console\), carol \(signed in at the console\)/,
    );
    const late = await carol.decide(h.workflowId, { decision: 'reject' });
    assert.equal(late.json.outcome, 'refused');
  });

  it('pages: the checkpoint page shows the question and the buttons; a form decision answers on the page', async () => {
    const h = await waitingRun();
    const bob = new Browser(consoleRun.url);
    await bob.login('bob');
    const home = await bob.call('GET', '/');
    assert.equal(home.status, 200);
    assert.ok(home.text.includes(`/runs/${h.workflowId}/checkpoints/old-primary-dead`));
    const page = await bob.call('GET', `/runs/${h.workflowId}/checkpoints/old-primary-dead`);
    assert.equal(page.status, 200);
    assert.match(page.text, /ensure that the initial machine actually is dead/);
    assert.match(page.text, /<button name="decision" value="approve" class="approve">Approve<\/button>/);
    assert.match(page.text, /0 of 2 approvals; may decide: alice, bob, carol; not alice, who started it/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const noToken = await bob.call('POST', `/runs/${h.workflowId}/checkpoints/old-primary-dead`, 'decision=reject');
    assert.equal(noToken.status, 403);
    const form = await bob.call(
      'POST',
      `/runs/${h.workflowId}/checkpoints/old-primary-dead`,
      `decision=reject&comment=still+pings&_csrf=${encodeURIComponent(bob.csrf)}`,
    );
    assert.equal(form.status, 303);
    assert.match(form.headers.get('location') ?? '', /\?answer=accepted/);
    const o = (await h.result()) as CheckpointOutcome;
    assert.deepEqual([o.decision, o.by, o.comment, o.verifiedBy], ['reject', 'bob', 'still pings', 'console']);
  });

  it('starting a runbook: the input is checked before anything starts, and the starter is the session', async () => {
    const bob = new Browser(consoleRun.url);
    await bob.login('bob');
    const start = (body: Record<string, unknown>) => bob.call('POST', '/api/runs', body, { 'x-csrf-token': bob.csrf });
    assert.equal((await bob.call('POST', '/api/runs', { operation: 'failover', cluster: 'main' })).status, 403, 'no CSRF token');
    assert.deepEqual((await start({ operation: 'drop-database', cluster: 'main' })).json, { error: 'operation must be one of failover, switchover, failback' });
    assert.deepEqual((await start({ operation: 'failover', cluster: 'nope' })).json, { error: 'unknown cluster "nope"; clusters: main' });
    assert.deepEqual((await start({ operation: 'switchover', cluster: 'main' })).json, { error: 'a switchover needs "to": the site to make primary' });
    assert.deepEqual((await start({ operation: 'failover', cluster: 'main', to: 'dc9' })).json, { error: 'unknown site "dc9" in main; sites: dc1, dc2' });
    const page = await bob.call('GET', '/start');
    assert.match(page.text, /<button>Dry run first<\/button>/);
  });

  it('sign-in failures are rate-limited per name and address, with Retry-After', async () => {
    const mallory = new Browser(consoleRun.url);
    // Five failures from one address (the first test made one of them) and further tries are refused unchecked.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await mallory.call('POST', '/api/login', { name: 'dave', password: `guess ${i}` })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429]);
    const limited = await mallory.call('POST', '/api/login', { name: 'bob', password: PASSWORDS.bob });
    assert.equal(limited.status, 429, 'even the right password waits out the lock: the lock says nothing about passwords');
    assert.ok(Number(limited.headers.get('retry-after')) > 0);
    assert.match(limited.json.error, /too many failed sign-ins/);
  });
  it('behind an authenticating proxy: its header names the operator, believed only from the listed proxies and only for operators', async () => {
    const { parse } = await import('yaml');
    const original = readFileSync(configPath, 'utf8');
    const withProxy = (proxies: string[]) => {
      const doc = parse(original) as Record<string, any>;
      doc.console.trustedHeader = { name: 'X-Forwarded-User', proxies };
      writeFileSync(configPath, stringify(doc));
      // the console re-reads the file when its modification time changes
      const t = new Date(Date.now() + proxies.length * 1000);
      utimesSync(configPath, t, t);
    };
    try {
      const viaProxy = (name: string) => new Browser(consoleRun.url).call('GET', '/api/session', undefined, { 'x-forwarded-user': name });
      withProxy(['127.0.0.2']);
      assert.equal((await viaProxy('bob')).status, 401, 'a header from an address that is not a proxy is not believed');
      withProxy(['127.0.0.2', '127.0.0.1']);
      const r = await viaProxy('Bob');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.operator, 'bob');
      assert.equal((await viaProxy('mallory')).status, 401, 'a name that is not an operator gets nothing');
    } finally {
      writeFileSync(configPath, original);
      const t = new Date(Date.now() + 10_000);
      utimesSync(configPath, t, t);
    }
  });
});
