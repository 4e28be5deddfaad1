/** What bench/peers.ts asks of each peer cluster. */
import type { PeerNode } from './procs';

export interface Peer {
  name: 'repmgr' | 'pg_auto_failover' | 'patroni';
  nodes: PeerNode[];
  /** The switchover command as printed in the output. */
  switchoverCommand: string;
  /** What the failover part measures against (the thing that reacts to the kill). */
  failoverBy: string;
  /** Each setting changed from the tool's defaults, with why (printed). */
  changes: string[];
  /** The planned switchover from `from` to `to`; resolves when the command returned 0, throws with its output otherwise. */
  switchover(from: PeerNode, to: PeerNode): Promise<void>;
  /** After the primary's postmaster was killed and writes came back on `primary`: make `old` a streaming standby again, if the tool has not. */
  restore(old: PeerNode, primary: PeerNode): Promise<void>;
}
