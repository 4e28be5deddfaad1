/**
 * What the activities observe and return, shared by activities, workflows and the client (the
 * contract: pure, no Node imports). Every field is plain JSON: it lands in workflow history, so
 * nothing secret belongs here.
 */

/** What switchyard sees of one PostgreSQL node. */
export interface PgNodeStatus {
  cluster: string;
  node: string;
  site: string;
  /** Could a connection be made and a query answered? */
  reachable: boolean;
  /** Why not, when not reachable (e.g. "connect ECONNREFUSED 127.0.2.1:5432"). */
  error?: string;
  /**
   * What not reachable means, so that checks fail closed: `refused` (the host answers and nothing
   * listens there: PostgreSQL does not run), `no-answer` (the address does not answer at all: the
   * host is down or cut off), `unknown` (something answers but its role could not be read: a
   * refused login, a server that accepts TCP but does not speak (frozen), a timeout after
   * connecting, an error). Only `refused` is evidence that PostgreSQL is down; absent on a
   * reachable node (and on results recorded before this field existed: read as `unknown`).
   */
  unreachable?: 'refused' | 'no-answer' | 'unknown';
  inRecovery?: boolean;
  /**
   * Timeline from pg_control_checkpoint(); on a primary, the timeline of the WAL it is writing
   * when that is newer (right after a promotion, before the next checkpoint).
   */
  timeline?: number;
  systemIdentifier?: string;
  serverVersion?: string;
  /** Primary: pg_current_wal_lsn(). */
  currentLsn?: string;
  /** Standby: pg_last_wal_receive_lsn() and pg_last_wal_replay_lsn(). */
  receiveLsn?: string | null;
  replayLsn?: string | null;
  /** Standby: now() - pg_last_xact_replay_timestamp(), seconds; null when nothing replayed yet. */
  replayDelaySeconds?: number | null;
  /** Standby: pg_stat_wal_receiver.status ("streaming", …) or null when no receiver runs. */
  walReceiver?: { status: string; senderHost: string | null; senderPort: number | null; slotName: string | null } | null;
  /** Primary: pg_stat_replication rows. */
  replicas?: {
    applicationName: string;
    clientAddr: string | null;
    state: string;
    sentLsn: string | null;
    replayLsn: string | null;
    replayLagBytes: number | null;
  }[];
  /** Physical replication slots on this node. */
  slots?: { name: string; active: boolean; restartLsn: string | null }[];
}

/** Result of a write probe on the node believed to be primary. */
export interface PgWriteProbe {
  node: string;
  ok: boolean;
  /** LSN after the write committed. */
  lsn?: string;
  detail: string;
}

/** Standby lag measured against the primary's current position. */
export interface PgLag {
  primary: string;
  standby: string;
  primaryLsn: string;
  receiveLsn: string | null;
  replayLsn: string | null;
  /** primaryLsn - replayLsn, in bytes (null when the standby reports no position). */
  lagBytes: number | null;
  /** now() - pg_last_xact_replay_timestamp() on the standby, 0 when fully replayed. */
  lagSeconds: number | null;
}

export interface SshCheck {
  host: string;
  /** null: a shared host (no site), such as a load balancer's. */
  site: string | null;
  address: string;
  port: number;
  ok: boolean;
  /** "unreachable", "host-key-mismatch", "auth-failed", "ok", "error". */
  outcome: 'ok' | 'unreachable' | 'host-key-mismatch' | 'auth-failed' | 'error';
  /** e.g. "key SHA256:… matches the pinned key" or "host key SHA256:… does not match pinned SHA256:…". */
  detail: string;
}

export interface RemoteCommandResult {
  host: string;
  /** The command as sent, already quoted (no secrets are ever put in commands). */
  command: string;
  exitCode: number | null;
  /** The signal that ended the command, when one did. */
  signal?: string | null;
  /** The command ran past its timeout and was cut off (exitCode is then null). */
  timedOut?: boolean;
  /** Output, each stream cut to its last 64 KiB. */
  stdout: string;
  stderr: string;
}

export interface ServiceState {
  site: string;
  service: string;
  host: string;
  running: boolean | null;
  /** serviceStart/serviceStop: whether this call changed anything (false: it already was so). */
  changed?: boolean;
  detail: string;
}

export interface MaintenanceState {
  site: string;
  /** From the maintenance status command; null when it could not be run. */
  on: boolean | null;
  /** HTTP status of the site's app URL (200 serving, 503 maintenance); null when unreachable. */
  httpStatus: number | null;
  /** maintenanceSet: whether this call changed anything (false: it already was so). */
  changed?: boolean;
  detail: string;
}

export interface TrafficState {
  driver: string;
  kind: 'haproxy' | 'elastic-ip' | 'private-ip' | 'command';
  /** The site traffic currently points at, or null when it points at none / cannot be read. */
  site: string | null;
  /** Concrete target: "127.0.1.1:5432", "i-0abc (10.0.1.10)", … */
  target: string | null;
  /** trafficMove: whether this call moved anything (false: traffic already pointed there). */
  changed?: boolean;
  detail: string;
}

export interface Ec2InstanceInfo {
  node: string;
  site: string;
  instanceId: string | null;
  state: string | null;
  privateIp: string | null;
  publicIp: string | null;
  instanceType: string | null;
  subnetId: string | null;
  securityGroupIds: string[];
  volumes: { volumeId: string; device: string; sizeGiB: number | null }[];
  detail: string;
}

/** Who holds an Elastic IP. */
export interface Ec2AddressHolder {
  publicIp: string;
  /** The instance the address is associated with; null when unassociated or not found. */
  instanceId: string | null;
  /** The database node whose EC2 selector matches that instance, if any. */
  node: string | null;
  site: string | null;
  privateIp: string | null;
  associationId: string | null;
  allocationId: string | null;
  /** Could the EC2 API be asked? (false: the fields above are unknown, see detail) */
  ok: boolean;
  detail: string;
}

export interface NotifyResult {
  /** Was a webhook configured for the cluster? (false: nothing to do, not an error) */
  configured: boolean;
  delivered: boolean;
  /** HTTP status of the webhook's answer, when there was one. */
  httpStatus: number | null;
  detail: string;
}

/** What pg_controldata says about a node's data directory (read over SSH on its host). */
export interface PgControlData {
  node: string;
  /** Could pg_controldata be run and its output read? (false: see detail; every field below is null) */
  ok: boolean;
  /** "Database cluster state": "shut down", "in production", "shut down in recovery", "in archive recovery", … */
  state: string | null;
  /** "Latest checkpoint location". */
  checkpointLsn: string | null;
  /** "Latest checkpoint's REDO location". */
  redoLsn: string | null;
  /** "Latest checkpoint's TimeLineID". */
  timeline: number | null;
  /** "Minimum recovery ending location" ("0/0" on a node that is not recovering). */
  minRecoveryEndLsn: string | null;
  /** "Database system identifier". */
  systemIdentifier: string | null;
  detail: string;
}

/** Result of fencing a node: PostgreSQL stopped on its host and refusing connections. */
export interface PgFenceResult {
  node: string;
  /** The node's sshHost (where pg_ctl ran). */
  host: string;
  sshReachable: boolean;
  /** pg_ctl status before acting: true running, false not running (exit 3), null unknown. */
  wasRunning: boolean | null;
  /** The stop mode that stopped it; null when it was not running, or could not be stopped. */
  stoppedWith: 'fast' | 'immediate' | null;
  /** pg_ctl status (the last one read) reports no server running. */
  stopped: boolean;
  /** A connection attempt to host:port failed to connect (nothing answers, or it refuses new sessions). */
  refusesConnections: boolean;
  /** stopped && refusesConnections. */
  fenced: boolean;
  /**
   * The fence was made to last (asked for with `mark`): standby.signal and the fence marker are in
   * the data directory, so a restart comes up read-only, and the boot service was disabled where
   * the topology says how. null: not asked for.
   */
  marked: boolean | null;
  /** The node's boot service was disabled (null: no `service.disable` in the topology, or not asked for). */
  serviceDisabled: boolean | null;
  /** This call sent a stop to a server that was running (false: it already was stopped). */
  changed: boolean;
  /** pg_controldata read after the stop; null when the host could not be reached. */
  control: PgControlData | null;
  /** What was tried and seen, in order, for a person. */
  steps: string[];
  detail: string;
}

export interface PgStartResult {
  node: string;
  /** pg_ctl start was run (false: pg_ctl status said it was running already). */
  changed: boolean;
  /** Accepts connections (always true when returned: otherwise pgStart throws). */
  running: boolean;
  detail: string;
}

export interface PgPromoteResult {
  node: string;
  /** pg_promote was called (false: the node was already out of recovery). */
  changed: boolean;
  /** Timeline the node writes on now (max of checkpoint TLI and the current WAL file's TLI). */
  timeline: number | null;
  /** pg_current_wal_lsn() after the promotion. */
  lsn: string | null;
  detail: string;
}

/** An afterPromote hook's command, as run. Non-zero exits are returned, not thrown. */
/**
 * A hook's run. `alreadyDone`: its check command exited 0, so the command was not run (the
 * command, exit code and output are then the check's).
 */
export type HookRunResult = RemoteCommandResult & { hook: string; site: string; alreadyDone?: boolean };

export interface Ec2StopResult {
  node: string;
  instanceId: string | null;
  stateBefore: string | null;
  /** "stopped" when the call returns normally. */
  stateAfter: string | null;
  /** StopInstances was called (false: already stopped or stopping). */
  changed: boolean;
  /** A forced stop (StopInstances Force) was sent because the instance hung in "stopping". */
  forced?: boolean;
  detail: string;
}

/**
 * The marker a failover leaves in a fenced former primary's data directory (beside
 * standby.signal), so that whoever finds the node knows why it is read-only and what to run.
 */
export interface FenceMarker {
  /** The workflow that fenced it. */
  fencedBy: string;
  /** The node promoted in its place. */
  newPrimary: string;
  /** ISO time of the fence. */
  at: string;
  reason: string;
}

/** What a node's data directory says about a fence, read over SSH. */
export interface FenceState {
  node: string;
  /** The host could be asked (false: unreachable; the other fields are then null). */
  readable: boolean;
  marker: FenceMarker | null;
  standbySignal: boolean | null;
  detail: string;
}

/** The outcome of a node's STONITH command (power off through a BMC, a cloud API, a PDU). */
export interface StonithResult {
  node: string;
  /** The host the command ran on. */
  host: string;
  /** The command exited 0: it reports the node powered off. */
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
  detail: string;
}

/** The primary's position as the newest completed readiness run recorded it. */
export interface LastPrimaryPosition {
  found: boolean;
  /** ReadinessReport.primaryLsn of that run. */
  lsn: string | null;
  /** ReadinessReport.primaryNode / primarySite. */
  node: string | null;
  site: string | null;
  /** ReadinessReport.observedAt (when that run started observing). */
  observedAt: string | null;
  workflowId: string | null;
  detail: string;
}

/** pgEnsureSlot: a physical replication slot on the primary for a standby to stream through. */
export interface PgEnsureSlotResult {
  primary: string;
  slot: string;
  /** This call created it (false: it existed already). */
  created: boolean;
  detail: string;
}

/** pgRewind: pg_rewind of a stopped node's data directory from a source node. */
export interface PgRewindResult {
  node: string;
  source: string;
  /** pg_rewind exited 0 (a rewind, or "no rewind required"). false: see output; take a base backup instead. */
  ok: boolean;
  /** pg_rewind found the target's WAL ends before the point where the timelines forked: nothing to undo. */
  noRewindNeeded: boolean;
  /** "servers diverged at WAL location X on timeline N". */
  divergedAtLsn: string | null;
  divergedTimeline: number | null;
  /** The target's "Latest checkpoint location" read before the rewind: where its WAL ends after a clean stop. */
  targetEndLsn: string | null;
  /** targetEndLsn - divergedAtLsn (>= 0): WAL the old primary wrote after the fork, discarded by the rewind. */
  divergedBytes: number | null;
  durationMs: number;
  /** The last lines of pg_rewind's output (progress lines collapsed). */
  output: string;
  detail: string;
}

/** pgBasebackup: a stopped node's data directory rebuilt from a source node with pg_basebackup. */
export interface PgBasebackupResult {
  node: string;
  source: string;
  /** Every <dataDir>.switchyard-<UTC stamp> directory beside the data directory (this and earlier attempts), never deleted. */
  movedAside: string[];
  durationMs: number;
  detail: string;
}

/** pgConfigureStandby: standby.signal and the primary_* settings in postgresql.auto.conf. */
export interface PgConfigureStandbyResult {
  node: string;
  primary: string;
  /** This call changed a file (false: everything was already so). */
  changed: boolean;
  detail: string;
}

export interface ConfigFileCopy {
  /** Path read on the `from` node's host. */
  source: string;
  /** Path written on the node's host. */
  target: string;
  bytes: number;
  /** sha256 of the content (hex); the content itself never leaves the hosts. */
  sha256: string;
  /** The target was written (false: it already had this content). */
  changed: boolean;
}

/** copyConfigFiles: the node's configFiles copied from another node's host. */
export interface CopyConfigFilesResult {
  node: string;
  from: string;
  files: ConfigFileCopy[];
}

/** pgWaitReplay: has a standby replayed up to an LSN? */
export interface PgWaitReplayResult {
  node: string;
  lsn: string;
  /** pg_last_wal_replay_lsn() when last read (null: never read, or nothing replayed). */
  replayLsn: string | null;
  reached: boolean;
  waitedMs: number;
  detail: string;
}

/** pgWaitStreaming: a standby streaming from the primary with lag under a bound. */
export interface PgWaitStreamingResult {
  node: string;
  primary: string;
  streaming: boolean;
  /** primary's pg_current_wal_lsn() - node's pg_last_wal_replay_lsn(), when last both were read. */
  lagBytes: number | null;
  waitedMs: number;
  detail: string;
}

/** writeProbeLoop: how long writes were refused (first refused write → first accepted one on expectNode). */
export interface WriteProbeSummary {
  /** Rounds run (each tries the nodes until one takes the write). */
  probes: number;
  /** Rounds in which no node took the write. */
  refused: number;
  firstRefusedAt: string | null;
  firstAcceptedAfterRefusalAt: string | null;
  /** firstAcceptedAfterRefusalAt - firstRefusedAt; null when writes were never refused, or never accepted on expectNode again. */
  downtimeMs: number | null;
  /** The node that took the last accepted write. */
  acceptedOn: string | null;
  detail: string;
}

/** A database node as seen from another site's vantage host (pg_isready over SSH). */
export interface VantageView {
  node: string;
  /** The vantage host, and its site. */
  from: string;
  site: string;
  /** `unknown`: the vantage host could not be asked, or pg_isready could not run there. */
  verdict: 'accepting' | 'rejecting' | 'no-answer' | 'unknown';
  detail: string;
}
