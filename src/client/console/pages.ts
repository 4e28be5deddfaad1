/**
 * The console's pages: server-rendered HTML that works without JavaScript (forms post, pages
 * redirect), enhanced by one small script (decisions answered in place, pages that refresh
 * themselves when their run moves on). Every value is escaped; nothing is inlined that the
 * Content-Security-Policy would have to allow.
 */
import { consoleLink } from '../../contract/console-links';
import type { Progress, StepRecord } from '../../contract/messages';
import type { ReadinessReport } from '../../contract/readiness';
import type { WatchStatus } from '../../contract/watch';
import { formatBytes } from '../../contract/format';
import type { Topology } from '../../topology/schema';
import type { RunSummary, RunView, WaitingRun } from './data';
import type { Session } from './sessions';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (ch) => ESC[ch]);
}
const link = (id: string, cp?: string) => consoleLink('', id, cp);

function layout(title: string, session: Session | null, body: string, refresh?: { url: string; fingerprint: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · switchyard</title><link rel="stylesheet" href="/static/console.css">
${session ? `<meta name="csrf-token" content="${esc(session.csrfToken)}">` : ''}
${refresh ? `<meta name="refresh-url" content="${esc(refresh.url)}"><meta name="refresh-fingerprint" content="${esc(refresh.fingerprint)}">` : ''}
<script src="/static/console.js" defer></script></head>
<body><header><a class="brand" href="/">switchyard</a><nav><a href="/">Waiting now</a><a href="/clusters">Readiness</a><a href="/start">Start a runbook</a></nav>
${session ? `<form method="post" action="/logout" class="who"><span>signed in as <b id="operator">${esc(session.operator)}</b></span><input type="hidden" name="_csrf" value="${esc(session.csrfToken)}"><button>Sign out</button></form>` : ''}
</header><main>${body}</main></body></html>`;
}

export function loginPage(o: { next: string; error: string | null; proxy: boolean }): string {
  return layout(
    'Sign in',
    null,
    `<h1>Sign in</h1>
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
${o.proxy ? '<p class="note">This console is behind an authenticating proxy: open it through the proxy to be signed in.</p>' : ''}
<form method="post" action="/login" class="login">
<input type="hidden" name="next" value="${esc(o.next)}">
<label>Operator <input name="name" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`,
  );
}

function when(iso: string | null): string {
  if (!iso) return '–';
  return `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>`;
}

function approvalsLine(w: { approvals: { by: string }[]; required: number; eligible: string[]; starterExcluded: boolean; requestedBy: string }): string {
  const who = w.eligible.length ? w.eligible.join(', ') : 'anyone who can reach the run';
  return `${w.approvals.length} of ${w.required} approval${w.required === 1 ? '' : 's'}${w.approvals.length ? ` (${esc(w.approvals.map((a) => a.by).join(', '))})` : ''}; may decide: ${esc(who)}${w.starterExcluded ? `; not ${esc(w.requestedBy)}, who started it` : ''}`;
}

export function homePage(o: { session: Session; waiting: WaitingRun[]; recent: RunSummary[]; clusters: string[]; signed: boolean; error?: string }): string {
  const fp = o.waiting.map((w) => `${w.workflowId}:${w.waitId}:${w.approvals.length}`).join(',');
  const waiting = o.waiting.length
    ? o.waiting
        .map(
          (w) => `<article class="waiting" data-workflow-id="${esc(w.workflowId)}">
<h3><a href="${link(w.workflowId, w.checkpoint)}">${esc(w.operation)} of ${esc(w.cluster)}: waiting at <code>${esc(w.checkpoint)}</code></a></h3>
<p class="meta">started by ${esc(w.requestedBy)}${w.reason ? ` — ${esc(w.reason)}` : ''}; waiting since ${when(w.startedAt)}; deadline ${when(w.deadline)} (then the run stops safely)</p>
<p class="prompt">${esc(w.prompt)}</p><p>${approvalsLine(w)}</p></article>`,
        )
        .join('\n')
    : '<p class="empty">No run waits at a checkpoint.</p>';
  const rows = o.recent
    .map(
      (r) =>
        `<tr><td><a href="${link(r.workflowId)}">${esc(r.workflowId)}</a></td><td>${esc(r.type)}</td><td>${esc(r.cluster ?? '')}</td><td>${esc(r.requestedBy ?? '')}</td><td>${esc(r.status)}${r.outcome ? ` (${esc(r.outcome)})` : ''}</td>` +
        `<td>${when(r.startedAt)}</td><td>${r.rtoSeconds === null ? '' : `${r.rtoSeconds} s`}</td><td>${r.dataLostBytes === null ? '' : esc(formatBytes(r.dataLostBytes))}</td><td>${r.writeDowntimeMs === null ? '' : `${r.writeDowntimeMs} ms`}</td></tr>`,
    )
    .join('\n');
  return layout(
    'Waiting now',
    o.session,
    `${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
${o.signed ? '' : '<p class="warn">This console has no signing key (console.signingKey): its decisions reach the runs unverified.</p>'}
<h1>Waiting now</h1><section id="waiting">${waiting}</section>
<h2>Clusters</h2><p><a href="/clusters">all clusters' readiness</a> · ${o.clusters.map((c) => `<a class="cluster" href="/clusters/${encodeURIComponent(c)}">${esc(c)} readiness</a>`).join(' ')}</p>
<h2>Recent runs</h2><table class="runs"><thead><tr><th>run</th><th>runbook</th><th>cluster</th><th>started by</th><th>status</th><th>started</th><th>RTO</th><th>data lost</th><th>write downtime</th></tr></thead><tbody>${rows}</tbody></table>`,
    { url: '/api/checkpoints', fingerprint: fp },
  );
}

function stepRows(steps: StepRecord[]): string {
  return steps
    .map((s) => {
      const took = s.endedAt ? `${((Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000).toFixed(1)} s` : '…';
      return `<tr class="step ${esc(s.state)}"><td>${esc(s.state)}</td><td><code>${esc(s.name)}</code>${s.attempts > 1 ? ` (attempt ${s.attempts})` : ''}</td><td>${took}</td><td>${esc(s.detail)}</td></tr>`;
    })
    .join('\n');
}

/** What the run page's script compares to know the run moved on. */
export function runFingerprint(r: { status: string; progress: Progress | null }): string {
  const s = r.progress?.steps ?? [];
  const last = s[s.length - 1];
  return `${r.status}|${s.length}|${last?.state ?? ''}|${r.progress?.waitingFor ?? ''}|${r.progress?.waiting?.approvals.length ?? 0}`;
}

function runHeader(r: RunView): string {
  const res = (r.result ?? null) as {
    abortedBecause?: string | null;
    state?: string;
    rto?: { fromDecisionSeconds: number | null; fromStartSeconds: number | null };
  } | null;
  return `<p class="meta">${esc(r.type)} of ${esc(r.cluster ?? '?')}, started by ${esc(r.input.requestedBy ?? '?')}${r.input.reason ? ` — ${esc(r.input.reason)}` : ''}; started ${when(r.startedAt)}${r.closedAt ? `, closed ${when(r.closedAt)}` : ''}</p>
<p class="status" id="status">${esc(r.status)}${r.outcome ? ` (${esc(r.outcome)})` : ''}${r.progress?.waitingFor ? ` — waiting at <a href="${link(r.workflowId, r.progress.waitingFor)}"><code>${esc(r.progress.waitingFor)}</code></a>` : ''}</p>
${r.failure ? `<p class="error">failed: ${esc(r.failure)}</p>` : ''}${res?.abortedBecause ? `<p class="warn">stopped because: ${esc(res.abortedBecause)}</p>` : ''}
${res?.state ? `<p>state: ${esc(res.state)}</p>` : ''}${res?.rto && res.rto.fromDecisionSeconds !== null ? `<p>RTO: ${res.rto.fromDecisionSeconds} s from the decision, ${res.rto.fromStartSeconds} s from the start</p>` : ''}`;
}

export function runPage(o: { session: Session; run: RunView }): string {
  const r = o.run;
  const decisions = r.decisions.length
    ? `<h2>Decisions</h2><table><thead><tr><th>checkpoint</th><th>decision</th><th>by</th><th>when</th><th>comment</th></tr></thead><tbody>${r.decisions
        .map(
          (d) =>
            `<tr><td><code>${esc(d.checkpoint)}</code></td><td>${esc(d.decision)}</td><td>${esc(d.approvals.length ? d.approvals.map((a) => `${a.by}${a.verifiedBy ? '' : ' (unverified)'}`).join(', ') : (d.by ?? ''))}</td><td>${when(d.at)}</td><td>${esc(d.comment ?? '')}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '';
  return layout(
    r.workflowId,
    o.session,
    `<h1>${esc(r.workflowId)}</h1>${runHeader(r)}${decisions}
<h2>Step log</h2><table class="steps"><tbody>${stepRows(r.progress?.steps ?? [])}</tbody></table>`,
    r.status === 'RUNNING' ? { url: `/api/runs/${encodeURIComponent(r.workflowId)}`, fingerprint: runFingerprint(r) } : undefined,
  );
}

function factsTable(facts: ReadinessReport | { error: string } | null): string {
  if (!facts) return '';
  if ('error' in facts) return `<section class="facts"><h2>Live facts</h2><p class="error">could not read the cluster now: ${esc(facts.error)}</p></section>`;
  const nodes = facts.observations.nodes
    .map(
      (n) =>
        `<li><b>${esc(n.node)}</b>: ${n.reachable ? (n.inRecovery ? 'answers, standby' : 'answers, PRIMARY (writable)') : `does not answer (${esc(n.error ?? 'no answer')})`}</li>`,
    )
    .join('');
  const ssh = facts.observations.ssh.map((s) => `<li>ssh ${esc(s.host)}: ${s.ok ? 'answers' : `no: ${esc(s.outcome)} (${esc(s.detail)})`}</li>`).join('');
  return `<section class="facts" id="facts"><h2>Live facts <small>(observed ${when(facts.observedAt)})</small></h2>
<p>primary: <b>${esc(facts.primaryNode ?? 'none answers as primary')}</b>; lag ${esc(formatBytes(facts.lagBytes))}${facts.lagSeconds === null ? '' : ` / ${facts.lagSeconds.toFixed(1)} s`}</p>
<ul>${nodes}${ssh}</ul></section>`;
}

export function checkpointPage(o: {
  session: Session;
  run: RunView;
  checkpoint: string;
  facts: ReadinessReport | { error: string } | null;
  answer: string | null;
  signed: boolean;
}): string {
  const r = o.run;
  const w = r.progress?.waiting && r.progress.waiting.checkpoint === o.checkpoint ? r.progress.waiting : null;
  const step = [...(r.progress?.steps ?? [])].reverse().find((s) => s.name === `checkpoint:${o.checkpoint}`);
  const form = w
    ? `<form method="post" action="${link(r.workflowId, o.checkpoint)}" class="decide" data-api="/api${link(r.workflowId, o.checkpoint)}">
<input type="hidden" name="_csrf" value="${esc(o.session.csrfToken)}">
<label>Comment <textarea name="comment" rows="2" placeholder="what you checked"></textarea></label>
<div class="buttons"><button name="decision" value="approve" class="approve">Approve</button><button name="decision" value="reject" class="reject">Reject</button></div>
<p class="note">You decide as <b>${esc(o.session.operator)}</b>${o.signed ? ', signed by this console' : ' (unsigned: this console has no signing key)'}.</p></form>`
    : `<p class="note">The run is not waiting at <code>${esc(o.checkpoint)}</code> now${r.progress?.waitingFor ? ` (it waits at <a href="${link(r.workflowId, r.progress.waitingFor)}">${esc(r.progress.waitingFor)}</a>)` : ''}: nothing to decide here.</p>`;
  return layout(
    `${o.checkpoint} · ${r.workflowId}`,
    o.session,
    `<h1><code>${esc(o.checkpoint)}</code> — <a href="${link(r.workflowId)}">${esc(r.workflowId)}</a></h1>${runHeader(r)}
${o.answer ? `<p class="answer ${o.answer.startsWith('accepted') ? 'ok' : 'error'}" role="status" id="answer">${esc(o.answer)}</p>` : '<p class="answer" role="status" id="answer" hidden></p>'}
${
  w
    ? `<section class="prompt"><h2>The question</h2><p id="prompt">${esc(w.prompt)}</p>
<p id="approvals">${approvalsLine(w)}</p>
<p class="meta">started by ${esc(w.requestedBy)} (${w.requestedByVerifiedBy ? `verified: ${esc(w.requestedByVerifiedBy)}` : 'self-declared, unverified'})</p><p>deadline ${when(w.deadline)}: with no decision by then the run stops safely (${esc(w.onDeadline)}).</p>
${w.verifiedDecisions === 'required' ? '<p class="note">This cluster counts only signed decisions.</p>' : ''}</section>`
    : step
      ? `<p>${esc(step.state)}: ${esc(step.detail)}</p>`
      : ''
}
${form}${factsTable(o.facts)}
<h2>Step log</h2><table class="steps"><tbody>${stepRows(r.progress?.steps ?? [])}</tbody></table>`,
    r.status === 'RUNNING' ? { url: `/api/runs/${encodeURIComponent(r.workflowId)}`, fingerprint: runFingerprint(r) } : undefined,
  );
}

export function clusterPage(o: {
  session: Session;
  cluster: string;
  report: ReadinessReport | { error: string };
  watch: WatchStatus | null | { error: string };
  answer?: string;
}): string {
  return layout(
    `${o.cluster} readiness`,
    o.session,
    `<h1>${esc(o.cluster)}: readiness</h1>${readinessSection(o.cluster, o.report)}${watchSection(o.session, o.cluster, o.watch, o.answer)}`,
  );
}

/** The cluster's watch: its verdict, what each vantage point saw, warnings, former primaries, and the acknowledgement of an automatic failover. */
function watchSection(session: Session, cluster: string, w: WatchStatus | null | { error: string }, answer?: string): string {
  const head = `<section class="watch" id="watch"><h2>Watch</h2>${answer ? `<p class="answer">${esc(answer)}</p>` : ''}`;
  if (w === null) return `${head}<p>No watch runs for ${esc(cluster)}: <code>switchyard watch ${esc(cluster)}</code></p></section>`;
  if ('error' in w) return `${head}<p class="error">${esc(w.error)}</p></section>`;
  const a = w.automatic.antiFlap;
  const rows = [
    ...w.probes.map((p) => `<tr><td>${esc(p.node)}</td><td>${esc(p.verdict)}</td><td>${esc(p.detail)}</td></tr>`),
    ...(w.consecutiveFailures > 0 ? w.vantage : []).map(
      (v) => `<tr><td>${esc(v.node)} from ${esc(v.from)}</td><td>${esc(v.verdict)}</td><td>${esc(v.detail)}</td></tr>`,
    ),
  ].join('');
  const staged = w.staged
    ? `<p class="staged">Staged failover: <a href="${esc(`/runs/${encodeURIComponent(w.staged.workflowId)}`)}">${esc(w.staged.workflowId)}</a> (${when(w.staged.at)}${w.staged.automatic ? ', automatic' : ''})</p>`
    : '';
  const warnings = w.incidents.filter((i) => i.notified).map((i) => `<li>${esc(i.detail)} (since ${when(i.since)})</li>`);
  const former = w.formerPrimaries.map((f) => `<li>${esc(f.node)}: replaced by ${esc(f.newPrimary)}; needs <code>${esc(f.rejoin)}</code></li>`);
  const auto = w.automatic.enabled
    ? `<p class="automatic">Automatic mode on (cool-down ${Math.round(w.automatic.coolDownSeconds / 60)} min). ${
        a.last
          ? `Last automatic failover <a href="${esc(`/runs/${encodeURIComponent(a.last.workflowId)}`)}">${esc(a.last.workflowId)}</a> at ${when(a.last.at)}: ${
              a.ackedBy
                ? `acknowledged by ${esc(a.ackedBy)}.`
                : `<strong>not acknowledged</strong>: the next failover waits for a person.</p>
<form method="post" action="/clusters/${encodeURIComponent(cluster)}/watch/ack"><input type="hidden" name="_csrf" value="${esc(session.csrfToken)}"><input name="comment" placeholder="comment"><button class="approve">Acknowledge as ${esc(session.operator)}</button></form><p>`
            }`
          : 'No automatic failover yet.'
      }</p>`
    : '<p class="automatic">Automatic mode off (failover.automatic): every staged failover waits for a person.</p>';
  return `${head}<p class="status verdict-${esc(w.verdict)}">${esc(w.verdict)} — primary ${esc(w.primary ?? 'unknown')}; ${w.confirmedFailures} failed probe(s) in a row (staged at ${w.failuresToStage}); every ${w.everySeconds} s; last probe ${when(w.lastProbeAt)}</p>
<table class="checks"><tbody>${rows}</tbody></table>${staged}${warnings.length ? `<h3>Warnings</h3><ul>${warnings.join('')}</ul>` : ''}${former.length ? `<h3>Former primaries</h3><ul>${former.join('')}</ul>` : ''}${auto}<p>${esc(w.last)}</p></section>`;
}

/** Every cluster's readiness, one table each, on one page. */
export function clustersPage(o: { session: Session; reports: { cluster: string; report: ReadinessReport | { error: string } }[] }): string {
  return layout(
    'Readiness',
    o.session,
    `<h1>Readiness of every cluster</h1>${o.reports.map((r) => `<section class="cluster-readiness" id="cluster-${esc(r.cluster)}"><h2>${esc(r.cluster)}</h2>${readinessSection(r.cluster, r.report)}</section>`).join('')}`,
  );
}

function readinessSection(cluster: string, r: ReadinessReport | { error: string }): string {
  return 'error' in r
    ? `<p class="error">${esc(r.error)}</p>`
    : `<p class="status">${r.ready ? 'READY' : 'NOT READY'} — primary ${esc(r.primarySite ?? 'none')}${r.primaryNode ? ` (${esc(r.primaryNode)})` : ''}, standby ${esc(r.standbySite ?? 'none')}, lag ${esc(formatBytes(r.lagBytes))}</p>
<table class="checks"><tbody>${r.checks.map((c) => `<tr class="${c.ok ? 'ok' : 'fail'}"><td>${c.ok ? 'ok' : 'FAIL'}</td><td>${esc(c.name)}</td><td>${esc(c.detail)}</td></tr>`).join('')}</tbody></table>
<p>observed ${when(r.observedAt)} · <a href="/clusters/${encodeURIComponent(cluster)}?fresh">check again</a></p>`;
}

export function startPage(o: {
  top: Topology;
  session: Session;
  form: Record<string, unknown>;
  error: string | null;
  plan: Record<string, unknown> | null;
}): string {
  const f = o.form;
  const sel = (v: string, cur: unknown) => (String(cur ?? '') === v ? ' selected' : '');
  const clusters = Object.keys(o.top.clusters);
  const sites = [...new Set(Object.values(o.top.clusters).flatMap((c) => Object.keys(c.sites)))];
  const result = (o.plan?.result ?? null) as { plan?: { step: string; target: string; action: string }[]; error?: string; abortedBecause?: string } | null;
  const plan = o.plan
    ? `<section class="plan"><h2>Dry run: the plan</h2>${result?.error ? `<p class="error">${esc(result.error)}</p>` : ''}
<table><tbody>${(result?.plan ?? []).map((p) => `<tr><td><code>${esc(p.step)}</code></td><td>${esc(p.target)}</td><td>${esc(p.action)}</td></tr>`).join('')}</tbody></table>
${result?.error ? '' : `<form method="post" action="/start"><input type="hidden" name="_csrf" value="${esc(o.session.csrfToken)}">${['operation', 'cluster', 'to', 'reason'].map((k) => `<input type="hidden" name="${k}" value="${esc(f[k] ?? '')}">`).join('')}<button class="approve">Start it as ${esc(o.session.operator)}</button></form>`}</section>`
    : '';
  return layout(
    'Start a runbook',
    o.session,
    `<h1>Start a runbook</h1>${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ''}
<form method="post" action="/start" class="start"><input type="hidden" name="_csrf" value="${esc(o.session.csrfToken)}"><input type="hidden" name="dryRun" value="true">
<label>Runbook <select name="operation">${['failover', 'switchover', 'failback'].map((x) => `<option${sel(x, f.operation)}>${x}</option>`).join('')}</select></label>
<label>Cluster <select name="cluster">${clusters.map((x) => `<option${sel(x, f.cluster)}>${esc(x)}</option>`).join('')}</select></label>
<label>To site <select name="to"><option value="">(failover: the standby)</option>${sites.map((x) => `<option${sel(x, f.to)}>${esc(x)}</option>`).join('')}</select></label>
<label>Reason <input name="reason" value="${esc(f.reason ?? '')}" placeholder="dc1 lost power"></label>
<button>Dry run first</button></form>${plan}`,
  );
}

export const CONSOLE_CSS = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{display:flex;gap:1.5em;align-items:center;background:#1b2a3a;color:#fff;padding:.6em 1.2em}
header a{color:#fff;text-decoration:none;margin-right:1em}.brand{font-weight:700}
.who{margin-left:auto;display:flex;gap:.6em;align-items:center}
main{max-width:70em;margin:1.2em auto;padding:0 1.2em}
.waiting,.prompt,.facts,.plan,form.decide{background:#fff;border:1px solid #d6dbe1;border-radius:6px;padding:.8em 1em;margin:.8em 0}
.waiting{border-left:5px solid #d9822b}.prompt{border-left:5px solid #d9822b}
.meta{color:#555}.error{color:#b3261e;font-weight:600}.warn{color:#8a5300}.ok{color:#1e7b34;font-weight:600}.note{color:#555}
table{border-collapse:collapse;width:100%;background:#fff}td,th{border-bottom:1px solid #e3e6ea;padding:.3em .5em;text-align:left;vertical-align:top}
tr.failed td:first-child,tr.fail td:first-child{color:#b3261e;font-weight:600}tr.waiting td:first-child{color:#d9822b;font-weight:600}
button{font:inherit;padding:.45em 1.1em;border-radius:4px;border:1px solid #888;background:#fff;cursor:pointer}
button.approve{background:#1e7b34;color:#fff;border-color:#1e7b34}button.reject{background:#b3261e;color:#fff;border-color:#b3261e}
.buttons{display:flex;gap:.8em;margin:.6em 0}label{display:block;margin:.4em 0}textarea,input,select{font:inherit;width:100%;max-width:40em}
form.login,form.start{max-width:28em}.cluster{margin-right:1em}
`;

export const CONSOLE_JS = `
(function(){
  var csrf=(document.querySelector('meta[name="csrf-token"]')||{}).content;
  document.querySelectorAll('form.decide').forEach(function(form){
    form.addEventListener('submit',function(ev){
      var btn=ev.submitter; if(!btn||!window.fetch) return; ev.preventDefault();
      var out=document.getElementById('answer');
      form.querySelectorAll('button').forEach(function(b){b.disabled=true});
      fetch(form.dataset.api,{method:'POST',headers:{'Content-Type':'application/json','X-CSRF-Token':csrf},credentials:'same-origin',
        body:JSON.stringify({decision:btn.value,comment:form.comment.value})})
      .then(function(r){return r.json()}).then(function(a){
        out.hidden=false; out.className='answer '+(a.outcome==='accepted'?'ok':'error');
        out.textContent=a.outcome==='accepted'?('accepted: '+btn.value+(a.decided===false?(' ('+a.approvals+' of '+a.required+' approvals)'):'')):('refused: '+(a.reason||a.error));
        form.querySelectorAll('button').forEach(function(b){b.disabled=false});
        if(a.outcome==='accepted') setTimeout(function(){location.reload()},800);
      }).catch(function(e){out.hidden=false;out.className='answer error';out.textContent='could not send: '+e});
    });
  });
  var url=(document.querySelector('meta[name="refresh-url"]')||{}).content;
  var fp=(document.querySelector('meta[name="refresh-fingerprint"]')||{}).content;
  if(url){setInterval(function(){
    fetch(url,{credentials:'same-origin'}).then(function(r){return r.json()}).then(function(d){
      var now;
      if(Array.isArray(d)) now=d.map(function(w){return w.workflowId+':'+w.waitId+':'+w.approvals.length}).join(',');
      else { var s=(d.progress&&d.progress.steps)||[]; var last=s[s.length-1];
        now=d.status+'|'+s.length+'|'+(last?last.state:'')+'|'+((d.progress&&d.progress.waitingFor)||'')+'|'+((d.progress&&d.progress.waiting&&d.progress.waiting.approvals.length)||0); }
      if(now!==fp) location.reload();
    }).catch(function(){});
  },2000);}
})();
`;
