/**
 * What the activities are built from: the clients they talk through (real by default, fakes in
 * unit tests), and the per-call runtime that resolves names and secrets and scrubs results.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import type { SecretRef, Topology } from '../topology/schema';
import { contextLogger, type ActivityLogger } from './activity-context';
import { defaultSecret, SecretScope } from './secrets';
import { Resolver } from './resolver';
import type { PgPool } from './postgres/pool';
import type { SshPool } from './ssh/pool';
import { nodeSshConnect, type SshConnectConfig, type SshSessionLike } from './ssh/session';

/** The part of pg.Client the activities use. */
export interface PgClientLike {
  connect(): Promise<unknown>;
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<unknown>;
  on?(event: 'error', listener: (err: Error) => void): unknown;
  on?(event: 'end', listener: () => void): unknown;
}

export interface Ec2ClientConfig {
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface ActivityTimeouts {
  /** pg connectionTimeoutMillis. */
  pgConnectMs: number;
  /** pg statement_timeout (server side) and query_timeout (client side, a little longer). */
  pgStatementMs: number;
  /** Any HTTP request (app health URL, webhook). */
  httpMs: number;
  /** AWS SDK: TCP connect and whole-request timeouts. */
  awsConnectMs: number;
  awsRequestMs: number;
  /** How long a check-then-act step keeps re-reading state before it declares the verify failed. */
  verifyMs: number;
  /** HAProxy runtime API: connect plus answer. */
  haproxyMs: number;
}

export const DEFAULT_TIMEOUTS: ActivityTimeouts = {
  pgConnectMs: 5_000,
  pgStatementMs: 15_000,
  httpMs: 5_000,
  awsConnectMs: 3_000,
  awsRequestMs: 20_000,
  verifyMs: 15_000,
  haproxyMs: 5_000,
};

export interface ActivityDeps {
  /** The worker's current topology (read once per activity call). */
  topology: () => Topology;
  /** Default: environment variable or file (trailing newline removed). */
  secret?: (ref: SecretRef) => Promise<string>;
  /** Default: new pg.Client. */
  pgClient?: (cfg: pg.ClientConfig) => PgClientLike;
  /** Default: node-ssh. */
  ssh?: (cfg: SshConnectConfig) => Promise<SshSessionLike>;
  /**
   * Share SSH connections between calls (the worker's; closed with it). Without it every call
   * opens and closes its own connections.
   */
  sshPool?: SshPool;
  /** Keep the reads' PostgreSQL connections between calls (the worker's; closed with it). Without it every read connects afresh. */
  pgPool?: PgPool;
  /** Default: EC2Client with adaptive retries and request timeouts. */
  ec2?: (cfg: Ec2ClientConfig) => EC2Client;
  fetch?: typeof fetch;
  now?: () => Date;
  timeouts?: Partial<ActivityTimeouts>;
  /** Where logs go outside an activity context (inside one, the activity's own logger is used). */
  logger?: ActivityLogger;
  /** A Temporal client for the activities that talk to other workflows (the cluster lock). */
  temporal?: () => Client;
  /**
   * A bare TCP connection attempt, to tell a refused port from a silent address and a frozen
   * server (postgres.ts unreachableKind). Default: a real connection; tests of single functions
   * hand in a fake so they never dial the addresses of their fixtures.
   */
  tcpContact?: (host: string, port: number, timeoutMs: number) => Promise<'refused' | 'accepted' | 'no-answer' | 'error'>;
}

export function defaultEc2(cfg: Ec2ClientConfig, t: ActivityTimeouts): EC2Client {
  return new EC2Client({
    region: cfg.region,
    endpoint: cfg.endpoint,
    credentials: cfg.credentials,
    maxAttempts: 5,
    retryMode: 'adaptive',
    // throwOnRequestTimeout: without it a request past its timeout only logs a warning and holds
    // its activity (and the worker slot) for as long as the server keeps it open.
    requestHandler: { connectionTimeout: t.awsConnectMs, requestTimeout: t.awsRequestMs, throwOnRequestTimeout: true },
  });
}

/** One activity call: a topology snapshot and a secret scope. */
export interface Call {
  top: Resolver;
  secrets: SecretScope;
}

export class Runtime {
  readonly secret: (ref: SecretRef) => Promise<string>;
  readonly pgClient: (cfg: pg.ClientConfig) => PgClientLike;
  readonly ssh: (cfg: SshConnectConfig) => Promise<SshSessionLike>;
  readonly sshPool: SshPool | null;
  readonly pgPool: PgPool | null;
  readonly ec2: (cfg: Ec2ClientConfig) => EC2Client;
  readonly fetch: typeof fetch;
  readonly now: () => Date;
  readonly timeouts: ActivityTimeouts;
  readonly log: ActivityLogger;

  constructor(readonly deps: ActivityDeps) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
    this.secret = deps.secret ?? defaultSecret;
    this.pgClient = deps.pgClient ?? ((cfg) => new pg.Client(cfg));
    this.ssh = deps.ssh ?? nodeSshConnect;
    this.sshPool = deps.sshPool ?? null;
    this.pgPool = deps.pgPool ?? null;
    this.ec2 = deps.ec2 ?? ((cfg) => defaultEc2(cfg, this.timeouts));
    this.fetch = deps.fetch ?? ((input, init) => fetch(input, init));
    this.now = deps.now ?? (() => new Date());
    this.log = contextLogger(deps.logger);
  }

  /**
   * Make an activity: each call gets a fresh topology snapshot and secret scope, and nothing it
   * returns or throws carries a secret value it resolved.
   */
  activity<I, O>(fn: (input: I, call: Call) => Promise<O>): (input: I) => Promise<O> {
    return async (input: I) => {
      const call: Call = { top: new Resolver(this.deps.topology()), secrets: new SecretScope(this.secret) };
      try {
        return call.secrets.redactJson(await fn(input, call));
      } catch (err) {
        throw call.secrets.redactError(err);
      }
    };
  }
}
