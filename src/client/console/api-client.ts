/**
 * The console's JSON API from a script (the demo, a chat bot): sign in once, then decide or
 * acknowledge; every write carries the session cookie and its CSRF token.
 */
export type ConsoleAnswer =
  { outcome: 'accepted'; approvals: number | null; required: number | null; decided: boolean } | { outcome: 'refused'; reason: string };

export class ConsoleSession {
  private constructor(
    readonly base: string,
    readonly operator: string,
    private readonly cookie: string,
    private readonly csrfToken: string,
  ) {}

  static async signIn(base: string, name: string, password: string): Promise<ConsoleSession> {
    const res = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
    const body = (await res.json().catch(() => ({}))) as { operator?: string; csrfToken?: string; error?: string };
    const cookie = res.headers.get('set-cookie')?.split(';')[0];
    if (res.status !== 200 || !cookie || !body.csrfToken)
      throw new Error(`console sign-in as ${name} at ${base}: HTTP ${res.status} ${body.error ?? ''}`.trim());
    return new ConsoleSession(base, body.operator ?? name, cookie, body.csrfToken);
  }

  async decide(workflowId: string, checkpoint: string, decision: 'approve' | 'reject', comment?: string): Promise<ConsoleAnswer> {
    const res = await fetch(`${this.base}/api/runs/${encodeURIComponent(workflowId)}/checkpoints/${encodeURIComponent(checkpoint)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: this.cookie, 'x-csrf-token': this.csrfToken },
      body: JSON.stringify({ decision, ...(comment ? { comment } : {}) }),
    });
    const body = (await res.json().catch(() => ({}))) as ConsoleAnswer & { error?: string };
    if (res.status !== 200) throw new Error(`console decision at ${workflowId}/${checkpoint}: HTTP ${res.status} ${body.error ?? ''}`.trim());
    return body;
  }

  /** A page or an API read, as this operator. */
  async get(path: string): Promise<{ status: number; text: string }> {
    const res = await fetch(`${this.base}${path}`, { headers: { cookie: this.cookie }, redirect: 'manual' });
    return { status: res.status, text: await res.text() };
  }

  /** Acknowledge the cluster's last automatic failover at its watch (anti-flapping). */
  async acknowledge(cluster: string, comment?: string): Promise<{ outcome: 'accepted' | 'refused'; reason?: string }> {
    const res = await fetch(`${this.base}/api/clusters/${encodeURIComponent(cluster)}/watch/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: this.cookie, 'x-csrf-token': this.csrfToken },
      body: JSON.stringify(comment ? { comment } : {}),
    });
    const body = (await res.json().catch(() => ({}))) as { outcome: 'accepted' | 'refused'; reason?: string; error?: string };
    if (res.status !== 200) throw new Error(`console acknowledgement at ${cluster}: HTTP ${res.status} ${body.error ?? ''}`.trim());
    return body;
  }
}
