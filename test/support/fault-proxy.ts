/**
 * A fault-injecting HTTP proxy for the EC2 API (test tree only): put in front of moto_server, it
 * forwards every request unchanged, except the ones it was told to spoil. A fault answers the next
 * N requests (optionally only those whose form body has `Action=<name>`) with EC2 throttling or a
 * 5xx, either instead of forwarding ("before": the request never reaches EC2) or after forwarding
 * ("after": EC2 did the work, the client only sees the error, as when an answer is lost). A
 * rewrite changes the body of the next N forwarded answers (e.g. a snapshot's state). It counts
 * what it injected and what it forwarded, per action.
 *
 * Listens on a loopback address; stop() closes the listener and destroys every socket it holds,
 * client side and upstream.
 */
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type FaultKind =
  /** HTTP 503 RequestLimitExceeded: what EC2 answers when the account's request rate is exceeded. */
  | 'throttle'
  /** HTTP 400 RequestLimitExceeded (some EC2 throttles come as client errors). */
  | 'throttle-400'
  /** HTTP 500 InternalError. */
  | 'internal'
  /** HTTP 503 Unavailable. */
  | 'unavailable';

export interface FaultRule {
  kind: FaultKind;
  /** How many matching requests get the fault. */
  count: number;
  /** Only requests whose body carries Action=<action> (e.g. "CreateSnapshot"); any when absent. */
  action?: string;
  /** "before" (default): answer without forwarding. "after": forward, let EC2 act, then answer with the fault. */
  when?: 'before' | 'after';
}

export interface RewriteRule {
  /** How many matching answers to rewrite. */
  count: number;
  action?: string;
  transform: (body: string) => string;
}

export interface ActionCounts {
  forwarded: number;
  injected: number;
  rewritten: number;
}

export interface FaultRecord {
  action: string;
  kind: FaultKind;
  when: 'before' | 'after';
  status: number;
}

const FAULTS: Record<FaultKind, { status: number; code: string; message: string }> = {
  throttle: { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' },
  'throttle-400': { status: 400, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' },
  internal: { status: 500, code: 'InternalError', message: 'An internal error has occurred.' },
  unavailable: { status: 503, code: 'Unavailable', message: 'The server is overloaded and cannot handle the request.' },
};

/** The EC2 query-protocol error body. */
export function ec2ErrorXml(code: string, message: string, requestId = randomUUID()): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

/** The Action=… of an EC2 query-protocol form body ("" when none). */
export function actionOf(body: string): string {
  return new URLSearchParams(body).get('Action') ?? '';
}

export class FaultProxy {
  private readonly sockets = new Set<Socket>();
  private readonly agent = new Agent({ keepAlive: false });
  private faults: Array<FaultRule & { left: number }> = [];
  private rewrites: Array<RewriteRule & { left: number }> = [];
  private readonly perAction = new Map<string, ActionCounts>();
  /** Every fault answered, in order. */
  readonly injectedLog: FaultRecord[] = [];
  forwarded = 0;
  injected = 0;

  private constructor(
    private readonly server: Server,
    private readonly upstream: URL,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listen on `host` (loopback), port 0 = any free one, forwarding to `target` (e.g. "http://127.0.92.1:5000"). */
  static async start(target: string, host = '127.0.0.1', port = 0): Promise<FaultProxy> {
    if (!/^127\./.test(host)) throw new Error(`the fault proxy listens on loopback only, not ${host}`);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const p = new FaultProxy(server, new URL(target), host, (server.address() as { port: number }).port);
    server.on('connection', (s) => {
      p.sockets.add(s);
      s.on('close', () => p.sockets.delete(s));
    });
    server.on('request', (req, res) => p.handle(req, res));
    return p;
  }

  /** The endpoint clients use. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Queue a fault; rules are tried in the order they were added. */
  inject(rule: FaultRule): this {
    if (!(rule.kind in FAULTS)) throw new Error(`unknown fault kind ${rule.kind}`);
    this.faults.push({ ...rule, left: rule.count });
    return this;
  }

  rewrite(rule: RewriteRule): this {
    this.rewrites.push({ ...rule, left: rule.count });
    return this;
  }

  /** Drop every pending fault and rewrite. */
  clear(): void {
    this.faults = [];
    this.rewrites = [];
  }

  /** Faults still to be injected. */
  get pending(): number {
    return this.faults.reduce((n, f) => n + f.left, 0);
  }

  counts(action: string): ActionCounts {
    return { ...(this.perAction.get(action) ?? { forwarded: 0, injected: 0, rewritten: 0 }) };
  }

  /** Zero the counters (pending faults stay). */
  resetCounts(): void {
    this.perAction.clear();
    this.injectedLog.length = 0;
    this.forwarded = 0;
    this.injected = 0;
  }

  async stop(): Promise<void> {
    this.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.agent.destroy();
    await closed;
  }

  private tally(action: string, key: keyof ActionCounts): void {
    const c = this.perAction.get(action) ?? { forwarded: 0, injected: 0, rewritten: 0 };
    c[key] += 1;
    this.perAction.set(action, c);
  }

  private take<R extends { left: number; action?: string }>(rules: R[], action: string): R | undefined {
    const r = rules.find((x) => x.left > 0 && (x.action === undefined || x.action === action));
    if (r) r.left -= 1;
    return r;
  }

  private answerFault(res: ServerResponse, action: string, rule: FaultRule): void {
    const f = FAULTS[rule.kind];
    const body = ec2ErrorXml(f.code, f.message);
    this.injected += 1;
    this.tally(action, 'injected');
    this.injectedLog.push({ action, kind: rule.kind, when: rule.when ?? 'before', status: f.status });
    res.writeHead(f.status, { 'content-type': 'text/xml;charset=UTF-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = actionOf(body.toString('utf8'));
      const fault = this.take(this.faults, action);
      if (fault && (fault.when ?? 'before') === 'before') {
        this.answerFault(res, action, fault);
        return;
      }
      this.forward(
        req,
        body,
        action,
        (status, headers, answer) => {
          this.forwarded += 1;
          this.tally(action, 'forwarded');
          if (fault) {
            this.answerFault(res, action, fault);
            return;
          }
          const rw = status === 200 ? this.take(this.rewrites, action) : undefined;
          let out = answer;
          if (rw) {
            out = Buffer.from(rw.transform(answer.toString('utf8')), 'utf8');
            this.tally(action, 'rewritten');
          }
          const h: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(headers)) {
            if (v === undefined || k === 'transfer-encoding' || k === 'content-length' || k === 'connection') continue;
            h[k] = v;
          }
          h['content-length'] = String(out.length);
          res.writeHead(status, h);
          res.end(out);
        },
        () => {
          // Upstream unreachable: what a dead endpoint looks like to the client.
          res.destroy();
        },
      );
    });
  }

  private forward(
    req: IncomingMessage,
    body: Buffer,
    _action: string,
    done: (status: number, headers: IncomingHttpHeaders, body: Buffer) => void,
    failed: () => void,
  ): void {
    const headers = { ...req.headers };
    delete headers.connection;
    const up = request(
      {
        protocol: this.upstream.protocol,
        hostname: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...headers, 'content-length': String(body.length) },
        agent: this.agent,
      },
      (ur) => {
        const parts: Buffer[] = [];
        ur.on('data', (c: Buffer) => parts.push(c));
        ur.on('error', failed);
        ur.on('end', () => done(ur.statusCode ?? 502, ur.headers, Buffer.concat(parts)));
      },
    );
    up.on('error', failed);
    up.end(body);
  }
}
