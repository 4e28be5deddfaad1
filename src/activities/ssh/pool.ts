/**
 * SSH connections kept open and shared between activity calls of one worker, so that a watch
 * probing 200 clusters every 10 s opens a channel on a live connection instead of a new TCP
 * connection, key exchange and login (and a new sshd process) for every read.
 *
 * Reuse never weakens a check:
 * - A connection is keyed by address, port, user, the pinned host key and the client key: the
 *   host key was checked when it was opened, against the same pin; a changed pin or key opens a
 *   new connection.
 * - A channel that does not open on a pooled connection within `openMs` (a silent partition,
 *   sshd at its MaxSessions, a connection that died on the way) retires that connection and the
 *   command goes on a fresh connection made exactly as without the pool, so its failure is
 *   classified as before (refused, timed out, auth, host key). The command had not started.
 * - A connection on which a command was given up (timed out or stopped without its channel
 *   closing) is retired: it is closed once nothing else uses it, which ends what still runs.
 * - sshCheck, the login check, opens its own connection (`fresh`) except in the watch's probe,
 *   which asks whether a command runs on the host now, as a failover's next command would: over
 *   the pool, falling back to a fresh login when the pooled connection fails.
 * - No connection is leased once it is `maxAgeMs` old, so a login (and its host key check) is
 *   proven again at least that often, however busy the connection is.
 * - At most `maxChannels` commands share a connection (below OpenSSH's MaxSessions of 10);
 *   an idle connection is closed after `idleMs`; keepalives (session.ts) close a dead one.
 */
import { ChannelNotOpened, type SshExecResult, type SshSessionLike, type SshStreamOptions } from './session';

export interface SshPoolOptions {
  /** Close a connection nothing used for this long. */
  idleMs: number;
  /** Commands at once on one connection. */
  maxChannels: number;
  /** How long a channel may take to open on a pooled connection before it is retired. */
  openMs: number;
  /** No new leases on a connection this old: it is retired and a new one opened. */
  maxAgeMs: number;
}

/** idleMs above the watch's 30 s between host reads, so a watched host keeps its connection. */
export const DEFAULT_SSH_POOL: SshPoolOptions = { idleMs: 60_000, maxChannels: 8, openMs: 2_000, maxAgeMs: 10 * 60_000 };

/** What the pool needs of a raw connection (session.ts's nodeSshConnect). */
export interface PoolableSession extends SshSessionLike {
  /** false once the connection closed or failed (a session without it counts as alive). */
  alive?(): boolean;
}

interface Entry {
  key: string;
  conn: PoolableSession;
  openedAt: number;
  /** Leases out on it (each runs one command at a time) plus commands still running on it. */
  busy: number;
  /** Leases out on it: what maxChannels bounds. */
  leases: number;
  /** No new commands: closed once busy reaches 0. */
  retired: boolean;
  idle?: NodeJS.Timeout;
}

interface Opening {
  claims: number;
  ready: Promise<Entry>;
}

export class SshPool {
  private readonly entries = new Map<string, Entry[]>();
  /** Connections being opened, with the leases that wait for a slot on each. */
  private readonly opening = new Map<string, Opening[]>();
  private closed = false;

  constructor(
    readonly opts: SshPoolOptions = DEFAULT_SSH_POOL,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A session for `key`: a channel slot on a live connection, or a new connection from
   * `connect` (whose errors propagate as they are). Its close() hands the slot back.
   */
  async lease(key: string, connect: () => Promise<PoolableSession>): Promise<SshSessionLike> {
    if (this.closed) return connect();
    const entry = this.pick(key);
    if (entry) return this.session(entry, connect, false);
    // Many calls at once (200 watches starting) wait for a connection being opened rather than
    // each opening one: slots on it are reserved for them when it is ready.
    let opening = (this.opening.get(key) ?? []).find((o) => o.claims < this.opts.maxChannels);
    if (!opening) {
      const claim = { claims: 0, ready: undefined as unknown as Promise<Entry> };
      claim.ready = connect().then(
        (conn) => {
          this.dropOpening(key, claim);
          const e = this.add(key, conn);
          e.leases += claim.claims;
          e.busy += claim.claims;
          return e;
        },
        (err) => {
          this.dropOpening(key, claim);
          throw err;
        },
      );
      this.opening.set(key, [...(this.opening.get(key) ?? []), claim]);
      opening = claim;
    }
    opening.claims += 1;
    return this.session(await opening.ready, connect, true);
  }

  private dropOpening(key: string, o: Opening): void {
    const rest = (this.opening.get(key) ?? []).filter((x) => x !== o);
    if (rest.length) this.opening.set(key, rest);
    else this.opening.delete(key);
  }

  /** Every connection, now (worker shutdown). Leases still out fail their next command. */
  close(): void {
    this.closed = true;
    for (const list of this.entries.values()) for (const e of list) this.dispose(e);
    this.entries.clear();
  }

  /** Open connections per key (tests, the bench). */
  size(key?: string): number {
    if (key) return this.entries.get(key)?.length ?? 0;
    let n = 0;
    for (const l of this.entries.values()) n += l.length;
    return n;
  }

  private pick(key: string): Entry | undefined {
    const list = this.entries.get(key) ?? [];
    const tooOld = this.now() - this.opts.maxAgeMs;
    for (const e of list) if (!e.retired && (e.conn.alive?.() === false || e.openedAt <= tooOld)) this.retire(e);
    return list.filter((e) => !e.retired && e.leases < this.opts.maxChannels).sort((a, b) => b.leases - a.leases)[0];
  }

  private add(key: string, conn: PoolableSession): Entry {
    const e: Entry = { key, conn, openedAt: this.now(), busy: 0, leases: 0, retired: this.closed };
    const list = this.entries.get(key) ?? [];
    list.push(e);
    this.entries.set(key, list);
    return e;
  }

  private acquire(e: Entry): void {
    e.busy += 1;
    if (e.idle) clearTimeout(e.idle);
    e.idle = undefined;
  }

  private release(e: Entry): void {
    e.busy -= 1;
    if (e.busy > 0) return;
    if (e.retired || this.closed) return this.dispose(e);
    e.idle = setTimeout(() => this.dispose(e), this.opts.idleMs);
    e.idle.unref();
  }

  private retire(e: Entry): void {
    e.retired = true;
    if (e.busy === 0) this.dispose(e);
  }

  private dispose(e: Entry): void {
    if (e.idle) clearTimeout(e.idle);
    e.idle = undefined;
    e.retired = true;
    const list = this.entries.get(e.key);
    if (list) {
      const rest = list.filter((x) => x !== e);
      if (rest.length) this.entries.set(e.key, rest);
      else this.entries.delete(e.key);
    }
    try {
      void e.conn.close();
    } catch {
      /* closing is best effort */
    }
  }

  /**
   * One lease: it holds a slot on its connection; each command holds one more while it runs. A
   * channel that does not open moves the lease (and the command) to a fresh connection; commands
   * still running on the old one keep it open until they end.
   */
  private session(first: Entry, connect: () => Promise<PoolableSession>, reserved: boolean): SshSessionLike {
    let entry = first;
    if (reserved) {
      if (entry.idle) clearTimeout(entry.idle);
      entry.idle = undefined;
    } else {
      entry.leases += 1;
      this.acquire(entry);
    }
    let released = false;
    const moveTo = (next: Entry) => {
      const stale = entry;
      next.leases += 1;
      this.acquire(next);
      entry = next;
      stale.leases -= 1;
      this.retire(stale);
      this.release(stale);
    };
    const attempt = async (on: Entry, go: Go, openMs: number | undefined): Promise<SshExecResult> => {
      this.acquire(on);
      try {
        const r = await go(on.conn, openMs);
        // Given up on or cut off: what may still run there ends when the connection closes.
        if (r.timedOut || (r.code === null && r.signal === null)) this.retire(on);
        return r;
      } catch (err) {
        if (!(err instanceof ChannelNotOpened)) this.retire(on);
        throw err;
      } finally {
        this.release(on);
      }
    };
    const run = async (go: Go): Promise<SshExecResult> => {
      if (released) throw new Error('ssh: the session was closed');
      try {
        return await attempt(entry, go, this.opts.openMs);
      } catch (err) {
        if (!(err instanceof ChannelNotOpened)) throw err;
        // Not started: on a connection made as without the pool (its failure classified as such).
        this.retire(entry);
        moveTo(this.add(entry.key, await connect()));
        return attempt(entry, go, undefined);
      }
    };
    return {
      exec: (command, opts) => run((conn, openMs) => conn.exec(command, { ...opts, openMs })),
      execStream: (command: string, opts: SshStreamOptions) =>
        run((conn, openMs) => {
          if (!conn.execStream) throw new Error('ssh: this session cannot stream');
          return conn.execStream(command, { ...opts, openMs });
        }),
      close: () => {
        if (released) return;
        released = true;
        entry.leases -= 1;
        this.release(entry);
      },
    };
  }
}

type Go = (conn: PoolableSession, openMs: number | undefined) => Promise<SshExecResult>;
