/**
 * What a status read says about a node, failing closed (DESIGN.md 3a): only a refused connection
 * is "down"; an address that does not answer at all is "no-answer" (consistent with a dead host,
 * which only a person or a power-off command can confirm); anything that answers without saying
 * its role (a refused login, a frozen server that accepts TCP, a timeout after connecting, an
 * error, a failed read) is "unknown", never "down" and never "fine".
 */
import type { PgNodeStatus } from '../../contract/observations';

export type NodeState = 'primary' | 'standby-streaming' | 'standby' | 'down' | 'no-answer' | 'unknown';

export function nodeState(s: PgNodeStatus | null, streamingFrom?: { host: string; port: number }): NodeState {
  if (!s) return 'unknown';
  if (s.reachable && s.inRecovery === false) return 'primary';
  if (s.reachable && s.inRecovery === true) {
    const w = s.walReceiver;
    const from = !streamingFrom || (w?.senderHost === streamingFrom.host && (w?.senderPort ?? 5432) === streamingFrom.port);
    return w?.status === 'streaming' && from ? 'standby-streaming' : 'standby';
  }
  if (!s.reachable && s.unreachable === 'refused') return 'down';
  if (!s.reachable && s.unreachable === 'no-answer') return 'no-answer';
  return 'unknown';
}

/** Not able to take writes as we see it: stopped, silent, or in recovery. */
export function cannotWrite(state: NodeState): boolean {
  return state === 'down' || state === 'no-answer' || state === 'standby' || state === 'standby-streaming';
}

/** For a person: what each state means. */
export function explainState(state: NodeState): string {
  switch (state) {
    case 'primary':
      return 'it answers as a writable primary';
    case 'standby-streaming':
      return 'it is a standby, streaming';
    case 'standby':
      return 'it is in recovery (read-only)';
    case 'down':
      return 'nothing listens on its port: PostgreSQL does not run there';
    case 'no-answer':
      return 'its address does not answer at all: the host is down or cut off from here';
    case 'unknown':
      return 'something answers but its role cannot be read (a refused login, a frozen or hung server, a failed read): it may still take writes';
  }
}
