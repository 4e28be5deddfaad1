/**
 * Every workflow the worker registers. Deterministic code only: no Node imports below here.
 * One file per runbook (failover's parts in failover/); lib/ holds what they share: the step log
 * and runner, checkpoints, the cluster lock, site steps, and every activity's options.
 */
export { readiness } from './readiness';
export { clusterLock } from './cluster-lock';
export { failover } from './failover';
export { rejoin } from './rejoin';
export { switchover } from './switchover';
export { failback } from './failback';
export { backup, backupRetention, drill } from './backup';
export { restore } from './restore';
export { backupList } from './backup-list';
export { walArchive } from './wal-archive';
export { guard } from './guard';
export { watch } from './watch';
