/**
 * `switchyard console`: the web console and its JSON API (Hono on node:http). Every route but the
 * sign-in needs a session; every write carries the session's CSRF token (header X-CSRF-Token or
 * form field _csrf) and, when the browser sends one, an Origin of this console. A decision's name
 * is the session's operator, never the request's, and the console signs it with its own key so
 * the workflow can tell (src/client/signing.ts); a refusal comes back with the run's reason.
 */
import { statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Client } from '@temporalio/client';
import { Hono, type Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { defaultSecret } from '../../activities/secrets';
import { loadTopology } from '../../topology/load';
import { consoleUrl } from '../../topology/operators';
import { clusterLayout } from '../../topology/layout';
import { durationSeconds, type Topology } from '../../topology/schema';
import type { TemporalTarget } from '../../temporal-target';
import { verifyPassword } from '../passwords';
import { rootMessage } from '../readiness-report';
import { decide, decideSigned, runId, startRunbook, withClient, type DecideAnswer, type Signer } from '../runs';
import { parseSigningKey, publicKeyHex, signStart } from '../signing';
import { ConsoleData } from './data';
import { CONSOLE_CSS, CONSOLE_JS, checkpointPage, clusterPage, clustersPage, homePage, loginPage, runPage, startPage } from './pages';
import { csrfMatches, SESSION_COOKIE, Sessions, type Session } from './sessions';

export interface ConsoleDeps {
  client: Client;
  namespace: string;
  /** The topology as it is now (re-read when the file changes). */
  topology: () => Topology;
  signer: Signer | null;
  /** The base of links, for redirects and notifications. */
  baseUrl: string;
  log: (line: string) => void;
}

type Env = { Variables: { session: Session } };

/** The operations the Start page offers, and the input each gets. */
const STARTABLE = ['failover', 'switchover', 'failback'] as const;

export function consoleApp(deps: ConsoleDeps): { app: Hono<Env>; drain: (ms: number) => Promise<void> } {
  const top = deps.topology;
  const sessions = new Sessions(durationSeconds(top().console?.sessionIdle ?? '12h') * 1000);
  const data = new ConsoleData(deps.client, deps.namespace);
  const secure = deps.baseUrl.startsWith('https:');
  const app = new Hono<Env>();

  app.use('*', async (c, next) => {
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'same-origin');
    c.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'");
    c.header('Cache-Control', 'no-store');
  });
  app.get('/static/console.css', (c) => c.body(CONSOLE_CSS, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  app.get('/static/console.js', (c) => c.body(CONSOLE_JS, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }));

  const remote = (c: Context) => getConnInfo(c).remote.address ?? 'unknown';
  const isApi = (c: Context) => c.req.path.startsWith('/api/');

  /** Signs in by name and password; the answer says why not, never which of the two was wrong. */
  async function login(c: Context, name: string, password: string): Promise<{ ok: true; session: Session } | { ok: false; status: 401 | 429; error: string }> {
    const who = name.trim().toLowerCase();
    const wait = sessions.retryAfter(who, remote(c));
    if (wait > 0) {
      c.header('Retry-After', String(wait));
      return { ok: false, status: 429, error: `too many failed sign-ins: try again in ${wait} s` };
    }
    const op = top().operators[who];
    if (!(await verifyPassword(password, op?.password))) {
      sessions.failed(who, remote(c));
      deps.log(`console: failed sign-in for "${who}" from ${remote(c)}`);
      return { ok: false, status: 401, error: 'wrong name or password' };
    }
    sessions.succeeded(who);
    const { token, session } = sessions.create(who, 'password');
    setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/', secure });
    deps.log(`console: ${who} signed in from ${remote(c)}`);
    return { ok: true, session };
  }

  app.post('/api/login', async (c) => {
    const body = (await c.req.json().catch(() => null)) as { name?: unknown; password?: unknown } | null;
    if (!body || typeof body.name !== 'string' || typeof body.password !== 'string')
      return c.json({ error: 'expected JSON { "name": "<operator>", "password": "<password>" }' }, 400);
    const r = await login(c, body.name, body.password);
    if (!r.ok) return c.json({ error: r.error }, r.status);
    return c.json({ operator: r.session.operator, csrfToken: r.session.csrfToken });
  });
  app.get('/login', (c) => c.html(loginPage({ next: safeNext(c.req.query('next')), error: null, proxy: top().console?.trustedHeader !== undefined })));
  app.post('/login', async (c) => {
    const f = await c.req.parseBody();
    const next = safeNext(typeof f.next === 'string' ? f.next : undefined);
    const r = await login(c, String(f.name ?? ''), String(f.password ?? ''));
    if (!r.ok) return c.html(loginPage({ next, error: r.error, proxy: false }), r.status);
    return c.redirect(next, 303);
  });

  // Everything below needs a session; writes need its CSRF token.
  app.use('*', async (c, next) => {
    const session = authenticate(c);
    if (!session) {
      if (isApi(c)) return c.json({ error: 'sign in first: POST /api/login { name, password }' }, 401);
      return c.redirect(`/login?next=${encodeURIComponent(c.req.path)}`, 303);
    }
    c.set('session', session);
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      if (origin && origin !== new URL(c.req.url).origin && origin !== new URL(deps.baseUrl).origin)
        return c.json({ error: `cross-origin write refused (Origin ${origin})` }, 403);
      let token = c.req.header('x-csrf-token');
      if (!token && (c.req.header('content-type') ?? '').match(/form/)) {
        const f = await c.req.parseBody();
        token = typeof f._csrf === 'string' ? f._csrf : undefined;
      }
      if (!csrfMatches(session, token)) return c.json({ error: 'missing or wrong CSRF token (X-CSRF-Token header or _csrf field, from POST /api/login)' }, 403);
    }
    await next();
  });

  function authenticate(c: Context): Session | null {
    const proxy = top().console?.trustedHeader;
    const cookie = getCookie(c, SESSION_COOKIE);
    if (proxy) {
      const name = c.req.header(proxy.name)?.trim().toLowerCase();
      if (name && proxy.proxies.includes(remote(c))) {
        if (!top().operators[name]) return null;
        const existing = sessions.get(cookie);
        if (existing && existing.operator === name) return existing;
        const { token, session } = sessions.create(name, 'proxy');
        setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/', secure });
        return session;
      }
    }
    const s = sessions.get(cookie);
    return s && s.via === 'password' ? s : null;
  }

  app.post('/api/logout', (c) => {
    sessions.end(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.json({ signedOut: true });
  });
  app.post('/logout', (c) => {
    sessions.end(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.redirect('/login', 303);
  });
  app.get('/api/session', (c) => c.json({ operator: c.var.session.operator, csrfToken: c.var.session.csrfToken }));

  // --- decisions ---------------------------------------------------------------------------------
  async function decideAs(session: Session, workflowId: string, checkpoint: string, decision: unknown, comment: unknown): Promise<DecideAnswer> {
    if (decision !== 'approve' && decision !== 'reject') return { accepted: false, reason: 'decision must be "approve" or "reject"' };
    const d = {
      checkpoint,
      decision,
      by: session.operator,
      ...(typeof comment === 'string' && comment.trim() ? { comment: comment.trim().slice(0, 2000) } : {}),
    } as const;
    const answer = deps.signer ? await decideSigned(deps.client, workflowId, d, deps.signer) : await decide(deps.client, workflowId, d);
    deps.log(`console: ${session.operator} ${decision} at ${workflowId}/${checkpoint}: ${answer.accepted ? 'accepted' : `refused (${answer.reason})`}`);
    return answer;
  }
  const answerJson = (a: DecideAnswer) =>
    a.accepted
      ? { outcome: 'accepted' as const, approvals: a.result.approvals ?? null, required: a.result.required ?? null, decided: a.result.decided ?? true }
      : { outcome: 'refused' as const, reason: a.reason };

  app.post('/api/runs/:id/checkpoints/:cp', async (c) => {
    const body = (await c.req.json().catch(() => null)) as { decision?: unknown; comment?: unknown; by?: unknown } | null;
    if (!body) return c.json({ error: 'expected JSON { "decision": "approve"|"reject", "comment"?: "…" }' }, 400);
    const a = await decideAs(c.var.session, c.req.param('id'), c.req.param('cp'), body.decision, body.comment).catch((e: unknown) => ({
      accepted: false as const,
      reason: rootMessage(e),
    }));
    return c.json(answerJson(a));
  });
  app.post('/runs/:id/checkpoints/:cp', async (c) => {
    const f = await c.req.parseBody();
    const a = await decideAs(c.var.session, c.req.param('id'), c.req.param('cp'), f.decision, f.comment).catch((e: unknown) => ({
      accepted: false as const,
      reason: rootMessage(e),
    }));
    const j = answerJson(a);
    const msg =
      j.outcome === 'accepted' ? `accepted: ${String(f.decision)}${j.decided ? '' : ` (${j.approvals} of ${j.required} approvals)`}` : `refused: ${j.reason}`;
    return c.redirect(
      `/runs/${encodeURIComponent(c.req.param('id'))}/checkpoints/${encodeURIComponent(c.req.param('cp'))}?answer=${encodeURIComponent(msg)}`,
      303,
    );
  });

  // --- reads -------------------------------------------------------------------------------------
  app.get('/api/checkpoints', async (c) => c.json(await data.waiting()));
  app.get('/api/runs', async (c) => c.json(await data.recent()));
  app.get('/api/runs/:id', async (c) => {
    const r = await data.run(c.req.param('id'));
    return r ? c.json(r) : c.json({ error: `no run "${c.req.param('id')}"` }, 404);
  });
  app.get('/api/clusters/:name/readiness', async (c) => {
    if (!top().clusters[c.req.param('name')]) return c.json({ error: `unknown cluster "${c.req.param('name')}"` }, 404);
    try {
      return c.json(await data.readinessOf(c.req.param('name'), c.req.query('fresh') !== undefined));
    } catch (e) {
      return c.json({ error: rootMessage(e) }, 503);
    }
  });

  // --- starting a runbook --------------------------------------------------------------------------
  function inputFor(session: Session, f: Record<string, unknown>): { type: string; input: Record<string, unknown> } | { error: string } {
    const operation = String(f.operation ?? '');
    const cluster = String(f.cluster ?? '');
    if (!(STARTABLE as readonly string[]).includes(operation)) return { error: `operation must be one of ${STARTABLE.join(', ')}` };
    const c = top().clusters[cluster];
    if (!c) return { error: `unknown cluster "${cluster}"; clusters: ${Object.keys(top().clusters).join(', ')}` };
    const to = typeof f.to === 'string' && f.to ? f.to : undefined;
    if (to && !(to in c.sites)) return { error: `unknown site "${to}" in ${cluster}; sites: ${Object.keys(c.sites).join(', ')}` };
    if (operation === 'switchover' && !to) return { error: 'a switchover needs "to": the site to make primary' };
    const reason = typeof f.reason === 'string' && f.reason.trim() ? f.reason.trim().slice(0, 500) : undefined;
    return {
      type: operation,
      input: {
        cluster,
        requestedBy: session.operator,
        ...(reason ? { reason } : {}),
        ...(to ? { to } : {}),
        ...(f.dryRun === true || f.dryRun === 'true' ? { dryRun: true } : {}),
      },
    };
  }
  async function start(session: Session, f: Record<string, unknown>): Promise<{ status: 200 | 400; body: Record<string, unknown> }> {
    const i = inputFor(session, f);
    if ('error' in i) return { status: 400, body: { error: i.error } };
    const dry = i.input.dryRun === true;
    const id = runId(dry ? `${i.type}-dry-run` : i.type, String(i.input.cluster));
    const input = deps.signer
      ? signStart(i.input as { cluster: string; requestedBy: string }, { workflowId: id, workflowType: i.type }, deps.signer.key, deps.signer.name)
      : i.input;
    await startRunbook(deps.client, deps.namespace, i.type, input, { workflowId: id, warn: deps.log });
    deps.log(`console: ${session.operator} started ${i.type} ${id}${dry ? ' (dry run)' : ''}`);
    if (!dry) return { status: 200, body: { workflowId: id } };
    const result = await deps.client.workflow
      .getHandle(id)
      .result()
      .catch((e: unknown) => ({ error: rootMessage(e) }));
    return { status: 200, body: { workflowId: id, dryRun: true, result } };
  }
  app.post('/api/runs', async (c) => {
    const body = (await c.req.json().catch(() => null)) as Record<string, unknown> | null;
    if (!body) return c.json({ error: 'expected JSON { operation, cluster, reason?, to?, dryRun? }' }, 400);
    const r = await start(c.var.session, body);
    return c.json(r.body, r.status);
  });
  app.post('/start', async (c) => {
    const f = (await c.req.parseBody()) as Record<string, unknown>;
    const r = await start(c.var.session, f);
    if (r.status !== 200) return c.html(startPage({ top: top(), session: c.var.session, form: f, error: String(r.body.error), plan: null }), 400);
    if (r.body.dryRun) return c.html(startPage({ top: top(), session: c.var.session, form: f, error: null, plan: r.body }));
    return c.redirect(`/runs/${encodeURIComponent(String(r.body.workflowId))}`, 303);
  });
  app.get('/start', (c) => c.html(startPage({ top: top(), session: c.var.session, form: c.req.query(), error: null, plan: null })));

  // --- pages ---------------------------------------------------------------------------------------
  app.get('/', async (c) => {
    const [waiting, recent] = await Promise.all([data.waiting(), data.recent()]);
    return c.html(homePage({ session: c.var.session, waiting, recent, clusters: Object.keys(top().clusters), signed: deps.signer !== null }));
  });
  app.get('/runs/:id', async (c) => {
    const r = await data.run(c.req.param('id'));
    if (!r)
      return c.html(homePage({ session: c.var.session, waiting: [], recent: [], clusters: [], signed: true, error: `no run "${c.req.param('id')}"` }), 404);
    return c.html(runPage({ session: c.var.session, run: r }));
  });
  app.get('/runs/:id/checkpoints/:cp', async (c) => {
    const r = await data.run(c.req.param('id'));
    if (!r)
      return c.html(homePage({ session: c.var.session, waiting: [], recent: [], clusters: [], signed: true, error: `no run "${c.req.param('id')}"` }), 404);
    const facts = r.cluster && r.progress?.waiting ? await data.readinessOf(r.cluster).catch((e: unknown) => ({ error: rootMessage(e) })) : null;
    return c.html(
      checkpointPage({
        session: c.var.session,
        run: r,
        checkpoint: c.req.param('cp'),
        facts,
        answer: c.req.query('answer') ?? null,
        signed: deps.signer !== null,
      }),
    );
  });
  app.get('/clusters', async (c) => {
    const names = Object.keys(top().clusters);
    const reports = await Promise.all(
      names.map(async (cluster) => ({
        cluster,
        report: await data.readinessOf(cluster, c.req.query('fresh') !== undefined).catch((e: unknown) => ({ error: rootMessage(e) })),
      })),
    );
    return c.html(clustersPage({ session: c.var.session, reports }));
  });
  app.get('/clusters/:name', async (c) => {
    const name = c.req.param('name');
    if (!top().clusters[name]) return c.text(`unknown cluster "${name}"`, 404);
    const [report, watch] = await Promise.all([
      data.readinessOf(name, c.req.query('fresh') !== undefined).catch((e: unknown) => ({ error: rootMessage(e) })),
      data.watchOf(name).catch((e: unknown) => ({ error: rootMessage(e) })),
    ]);
    return c.html(clusterPage({ session: c.var.session, cluster: name, report, watch, answer: c.req.query('answer') }));
  });

  // --- the watch: its status, and acknowledging an automatic failover -----------------------------
  /** Who may acknowledge: those who may approve old-primary-dead (the acknowledgement lets the next failover go on alone). */
  async function acknowledgeAs(session: Session, cluster: string, comment: unknown) {
    const c = top().clusters[cluster];
    if (!c) return { outcome: 'refused' as const, reason: `unknown cluster "${cluster}"` };
    const cp = clusterLayout(cluster, c, { operators: top().operators, console: top().console }).checkpoints;
    const eligible = cp.approvals?.['old-primary-dead']?.approvers ?? cp.approvers;
    if (eligible.length && !eligible.includes(session.operator.toLowerCase()))
      return {
        outcome: 'refused' as const,
        reason: `${session.operator} may not acknowledge for ${cluster}: only ${eligible.join(', ')} (those who approve old-primary-dead)`,
      };
    const text = typeof comment === 'string' && comment.trim() ? comment.trim().slice(0, 500) : undefined;
    const a = await data.acknowledge(cluster, session.operator, text).catch((e: unknown) => ({ outcome: 'refused' as const, reason: rootMessage(e) }));
    deps.log(`console: ${session.operator} acknowledged at the watch of ${cluster}: ${a.outcome}${a.reason ? ` (${a.reason})` : ''}`);
    return a;
  }
  app.get('/api/clusters/:name/watch', async (c) => {
    if (!top().clusters[c.req.param('name')]) return c.json({ error: `unknown cluster "${c.req.param('name')}"` }, 404);
    const w = await data.watchOf(c.req.param('name'));
    return w ? c.json(w) : c.json({ error: `no watch of ${c.req.param('name')} runs` }, 404);
  });
  app.post('/api/clusters/:name/watch/ack', async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { comment?: unknown };
    return c.json(await acknowledgeAs(c.var.session, c.req.param('name'), body.comment));
  });
  app.post('/clusters/:name/watch/ack', async (c) => {
    const f = await c.req.parseBody();
    const a = await acknowledgeAs(c.var.session, c.req.param('name'), f.comment);
    const msg = a.outcome === 'accepted' ? `accepted: ${a.reason}` : `refused: ${a.reason}`;
    return c.redirect(`/clusters/${encodeURIComponent(c.req.param('name'))}?answer=${encodeURIComponent(msg)}#watch`, 303);
  });

  app.onError((err, c) => {
    deps.log(`console: ${c.req.method} ${c.req.path} failed: ${rootMessage(err)}`);
    return isApi(c) ? c.json({ error: rootMessage(err) }, 500) : c.text(`error: ${rootMessage(err)}`, 500);
  });
  return { app, drain: (ms) => data.drain(ms) };
}

/** Only a path on this console may follow a sign-in. */
function safeNext(next: string | undefined): string {
  return next && /^\/(?!\/)[^\s\\]*$/.test(next) ? next : '/';
}

/** The console's signing key from the topology, checked against its public half; null when none is configured. */
export async function consoleSigner(top: Topology): Promise<Signer | null> {
  const cfg = top.console;
  if (!cfg?.signingKey || !cfg.publicKey) return null;
  const text = await defaultSecret(cfg.signingKey).catch((e: unknown) => {
    throw new Error(`console.signingKey: ${rootMessage(e)}`);
  });
  const key = parseSigningKey(text, 'console.signingKey');
  if (publicKeyHex(key) !== cfg.publicKey)
    throw new Error(
      'console.signingKey does not match console.publicKey: the workflows would refuse every decision it signs (`switchyard operator keygen --console` makes a pair)',
    );
  return { key, name: 'console' };
}

export interface RunningConsole {
  url: string;
  close: () => Promise<void>;
}

/** Starts the console on `listen` (default: the topology's console.listen); resolves once it listens. */
export async function startConsole(opts: {
  configPath: string;
  target: TemporalTarget;
  listen?: string;
  log?: (line: string) => void;
}): Promise<RunningConsole> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  let cached = { mtimeMs: statSync(opts.configPath).mtimeMs, top: loadTopology(opts.configPath) };
  const topology = () => {
    const m = statSync(opts.configPath, { throwIfNoEntry: false })?.mtimeMs;
    if (m !== undefined && m !== cached.mtimeMs) {
      try {
        cached = { mtimeMs: m, top: loadTopology(opts.configPath) };
        log(`console: re-read ${opts.configPath}`);
      } catch (err) {
        log(`console: ${opts.configPath} changed but is not valid, keeping the last good one: ${rootMessage(err)}`);
        cached = { ...cached, mtimeMs: m };
      }
    }
    return cached.top;
  };
  const listen = opts.listen ?? cached.top.console?.listen ?? '127.0.0.1:8180';
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen ${listen}: expected host:port`);
  const signer = await consoleSigner(cached.top);
  if (!signer) log('console: no console.signingKey in the topology: decisions are sent unsigned (the step log marks them unverified)');
  // One connection for the console's life.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let ready!: (v: RunningConsole) => void;
  let failed!: (e: unknown) => void;
  const started = new Promise<RunningConsole>((res, rej) => ((ready = res), (failed = rej)));
  const running = withClient(opts.target, async (client) => {
    const host = m[1].replace(/^\[|\]$/g, '');
    let baseUrl = consoleUrl(cached.top.console) ?? `http://${listen}`;
    const { app, drain } = consoleApp({ client, namespace: opts.target.namespace, topology, signer, baseUrl, log });
    const server = serve({ fetch: app.fetch, hostname: host, port: Number(m[2]) });
    await new Promise<void>((res, rej) => {
      server.once('listening', res);
      server.once('error', rej);
    });
    const port = (server.address() as AddressInfo).port;
    if (!cached.top.console?.url) baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    ready({
      url: baseUrl,
      close: async () => {
        // Requests in flight get 5 s to finish (a browser's idle keep-alive sockets are closed at once).
        await new Promise<void>((res) => {
          const s = server as typeof server & { closeIdleConnections?: () => void; closeAllConnections?: () => void };
          server.close(() => res());
          s.closeIdleConnections?.();
          setTimeout(() => s.closeAllConnections?.(), 5000).unref();
        });
        await drain(30_000);
        release();
        await running;
      },
    });
    await released;
  });
  running.catch(failed);
  return started;
}
