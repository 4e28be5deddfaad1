/**
 * Connecting to a node over the pg driver (the topology's login, connect and statement timeouts)
 * and telling why a connection failed: a refused port, a silent host, or unknown (auth, server
 * errors, anything else: never 'down').
 */
import { connect as tcpConnect } from 'node:net';
import type pg from 'pg';
import type { Call, PgClientLike, Runtime } from '../runtime';
import type { PgNodeStatus } from '../../contract/observations';
import { pgPoolKey } from './pool';

/** SQLSTATE classes that mean "this login will not work", not "try again". */
export function isAuthFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === '28P01' || code === '28000' || code === '3D000';
}

/** An error from the server (it answered), rather than from the network. */
export function isServerError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^E[A-Z]+$/.test(code);
}

/** What a bare TCP connection to host:port finds: the port refuses, accepts, or nothing answers. */
export type TcpContact = 'refused' | 'accepted' | 'no-answer' | 'error';

export function tcpContact(host: string, port: number, timeoutMs: number): Promise<TcpContact> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host, port });
    let settled = false;
    const done = (c: TcpContact) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(c);
    };
    const timer = setTimeout(() => done('no-answer'), timeoutMs);
    sock.on('connect', () => done('accepted'));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('refused');
      else if (err.code === 'ETIMEDOUT' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'EHOSTDOWN') done('no-answer');
      else done('error');
    });
  });
}

/**
 * Why a connection to a node failed, failing closed: only a refused TCP connection says that
 * nothing listens (PostgreSQL is down); a server that answered and refused the login, or one that
 * accepts TCP but does not speak (a frozen process: the kernel still completes the handshake), or
 * a timeout after connecting is `unknown`; an address that does not answer at all is `no-answer`.
 * A client-side timeout is told apart by a bare TCP connection made right after.
 */
export async function unreachableKind(
  rt: Runtime,
  err: unknown,
  host: string,
  port: number,
  sshAt?: { host: string; port: number },
): Promise<NonNullable<PgNodeStatus['unreachable']>> {
  if (isAuthFailure(err) || isServerError(err)) return 'unknown';
  const code = String((err as { code?: unknown })?.code ?? '');
  if (code === 'ECONNREFUSED') return 'refused';
  const dial = rt.deps.tcpContact ?? tcpContact;
  const bound = Math.min(rt.timeouts.pgConnectMs, 2_000);
  const tcp = await dial(host, port, bound);
  if (tcp === 'refused') return 'refused';
  // A timeout of the driver has no code: the bare connection says whether anything was there.
  if (tcp === 'no-answer' && ['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', ''].includes(code)) {
    // "No answer at all" must mean the host: a frozen server whose listen queue filled up (its
    // clients kept trying) drops new connections too, while its host still answers elsewhere.
    if (sshAt && (await dial(sshAt.host, sshAt.port, bound)) !== 'no-answer') return 'unknown';
    return 'no-answer';
  }
  return 'unknown';
}

/**
 * How switchyard connects to a node: the topology's user, database and password (resolved in the
 * call's secret scope), connect and statement timeouts. `statementMs` overrides the statement
 * timeout for one long statement (pg_promote's wait), client-side query timeout to match.
 */
export async function pgClientConfig(rt: Runtime, call: Call, cluster: string, node: string, opts: { statementMs?: number } = {}): Promise<pg.ClientConfig> {
  const t = rt.timeouts;
  const c = call.top.cluster(cluster);
  const n = call.top.node(cluster, node);
  const password = c.postgres.password ? await call.secrets.get(c.postgres.password, `postgres.password of cluster "${cluster}"`) : undefined;
  const statementMs = opts.statementMs ?? t.pgStatementMs;
  return {
    host: n.host,
    port: n.port,
    user: c.postgres.user,
    password,
    database: c.postgres.database,
    application_name: 'switchyard',
    connectionTimeoutMillis: t.pgConnectMs,
    statement_timeout: statementMs,
    lock_timeout: t.pgStatementMs,
    query_timeout: statementMs + 2_000,
    keepAlive: true,
  };
}

/** A client for cfg, connected (throwing on failure); a connection lost later is reported by the next query, never as an unhandled event. */
export async function connectPg(rt: Runtime, cfg: pg.ClientConfig): Promise<PgClientLike> {
  const client = rt.pgClient(cfg);
  client.on?.('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/**
 * Connect (throwing on failure), run, always end. `reuse` (reads only, safe to repeat): on the
 * worker's pooled connection to the node when it has one (postgres/pool.ts: any failure there
 * is retried on a fresh connection, as without the pool).
 */
export async function withPgClient<T>(
  rt: Runtime,
  call: Call,
  cluster: string,
  node: string,
  fn: (client: PgClientLike) => Promise<T>,
  opts: { statementMs?: number; reuse?: boolean } = {},
): Promise<T> {
  const cfg = await pgClientConfig(rt, call, cluster, node, opts);
  if (opts.reuse && rt.pgPool) return rt.pgPool.run(pgPoolKey(cfg), () => connectPg(rt, cfg), fn);
  const client = await connectPg(rt, cfg);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
