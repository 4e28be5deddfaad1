/** Every workflow the worker registers. Deterministic code only: no Node imports below here. */
export { readiness } from './readiness';
export { clusterLock } from './cluster-lock';
export { failover } from './failover';
export { rejoin } from './rejoin';
export { switchover } from './switchover';
export { failback } from './failback';
export { backup, backupRetention, drill } from './backup';
export { restore } from './restore';
export { guard } from './guard';
