/**
 * Every failure type an activity raises on purpose, once: the activities throw these names, and
 * the workflows' retry policies take their non-retryable list from here, so the two cannot drift.
 * `retry: false` means a second attempt cannot help (a wrong topology, a refused host key, a node
 * in the wrong role): the run gets the failure at once. The throw sites mark those non-retryable
 * themselves too; the list is the workflows' side of the same rule.
 */
const TABLE = {
  ConfigError: { retry: false, means: 'the topology or an input is wrong (also: a refused PostgreSQL login)' },
  HostKeyMismatch: { retry: false, means: 'a host presented a key other than the pinned one' },
  SshAuthFailed: { retry: false, means: 'SSH refused the configured key' },
  WrongRole: { retry: false, means: 'a node is not the primary or standby the step needs' },
  Ec2Ambiguous: { retry: false, means: 'a selector matches more than one EC2 instance' },
  Ec2AddressNotFound: { retry: false, means: 'no such Elastic IP in the account and region' },
  Ec2InstanceNotFound: { retry: false, means: 'no live EC2 instance matches a node' },
  Ec2NoVolumes: { retry: false, means: "the node's instance has no EBS volume" },
  ClusterBusy: { retry: false, means: "another mutating run holds the cluster's lock" },
  LockNotHeld: { retry: false, means: 'a release or a child run names a lock holder that does not hold it' },
  LockUnreadable: { retry: true, means: "a closed lock workflow's last holder could not be read (yet)" },
  InsufficientSpace: { retry: false, means: "a host's filesystem has no room for what a step would write (plus a reserve)" },
  BackupNotFound: { retry: false, means: 'no complete backup with that id' },
  BackupCorrupt: { retry: false, means: "a backup's files or manifest do not match" },
  BackupTooNew: { retry: false, means: 'a point-in-time restore names a backup that finished after its target time' },
  BackupUnsupported: { retry: false, means: 'a backup has parts a restore cannot put back (tablespaces)' },
  BackupUnusable: { retry: false, means: 'snapshots that cannot make an instance (no restore metadata, no root device)' },
  SnapshotFailed: { retry: false, means: 'an EBS snapshot of the backup is in state "error"' },
  PostgresRunning: { retry: false, means: 'a restore swap on a node whose PostgreSQL runs' },
  PrivateIpInUse: { retry: false, means: 'a live instance or a leftover interface holds the private IP a restore would take' },
  PgVersionMismatch: { retry: false, means: "the node's PostgreSQL major version differs from the backup's" },
  RestoreNotStaged: { retry: false, means: 'a restore swap without a staged copy of the backup' },
  RestoreMetadataTooLarge: { retry: false, means: "the instance's tags do not fit in a snapshot's tags" },
  RestoreLaunchFailed: { retry: false, means: 'a restored instance did not come up' },
  TerminateRefused: { retry: false, means: 'EC2 refused to terminate (termination protection)' },
} as const satisfies Record<string, { retry: boolean; means: string }>;

export type ErrorName = keyof typeof TABLE;

/** The names, for throw sites and comparisons: `Errors.WrongRole` is "WrongRole". */
export const Errors = Object.fromEntries(Object.keys(TABLE).map((k) => [k, k])) as { readonly [K in ErrorName]: K };

/** The failure types no retry can help: every activity retry policy's nonRetryableErrorTypes. */
export const NON_RETRYABLE_ERRORS: readonly ErrorName[] = (Object.keys(TABLE) as ErrorName[]).filter((k) => !TABLE[k].retry);
