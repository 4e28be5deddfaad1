/**
 * Console sessions: a random token in an HttpOnly, SameSite=Strict cookie, a CSRF token per
 * session that every write must carry, an idle timeout, and login attempts limited per name and
 * per address (a wrong password costs the same scrypt time as a right one). Kept in memory: a
 * restarted console asks everyone to sign in again, which is the safe direction.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'switchyard_session';

export interface Session {
  operator: string;
  csrfToken: string;
  /** How the operator was recognised. */
  via: 'password' | 'proxy';
  lastUsed: number;
}

/** Failed logins allowed per name, and per address, in the window before further tries are refused. */
const MAX_FAILURES = 5;
const FAILURE_WINDOW_MS = 15 * 60_000;

export class Sessions {
  private readonly byToken = new Map<string, Session>();
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly idleMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  create(operator: string, via: Session['via']): { token: string; session: Session } {
    const token = randomBytes(32).toString('base64url');
    const session: Session = { operator, csrfToken: randomBytes(24).toString('base64url'), via, lastUsed: this.now() };
    this.byToken.set(token, session);
    return { token, session };
  }

  /** The live session of a cookie value, its idle clock restarted; null when none or expired. */
  get(token: string | undefined): Session | null {
    if (!token) return null;
    const s = this.byToken.get(token);
    if (!s) return null;
    if (this.now() - s.lastUsed > this.idleMs) {
      this.byToken.delete(token);
      return null;
    }
    s.lastUsed = this.now();
    return s;
  }

  end(token: string | undefined): void {
    if (token) this.byToken.delete(token);
  }

  /** Seconds to wait before another login try for this name or address, or 0. */
  retryAfter(name: string, address: string): number {
    const t = this.now();
    let wait = 0;
    for (const key of [`name:${name.toLowerCase()}`, `addr:${address}`]) {
      const recent = (this.failures.get(key) ?? []).filter((x) => t - x < FAILURE_WINDOW_MS);
      this.failures.set(key, recent);
      if (recent.length >= MAX_FAILURES) wait = Math.max(wait, Math.ceil((recent[0] + FAILURE_WINDOW_MS - t) / 1000));
    }
    return wait;
  }

  failed(name: string, address: string): void {
    for (const key of [`name:${name.toLowerCase()}`, `addr:${address}`]) this.failures.set(key, [...(this.failures.get(key) ?? []), this.now()]);
  }

  succeeded(name: string): void {
    this.failures.delete(`name:${name.toLowerCase()}`);
  }
}

/** Does the token a write carries equal the session's (constant time)? */
export function csrfMatches(session: Session, given: string | undefined | null): boolean {
  if (!given) return false;
  const a = Buffer.from(session.csrfToken);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
