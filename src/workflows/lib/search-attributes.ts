/**
 * switchyard's search attributes: the Temporal UI and `temporal workflow list` show where every
 * run stands with them. They must be registered on the namespace (the sandbox and
 * docker-compose.yml do it; the worker checks at start and says how when they are missing).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA_CLUSTER = defineSearchAttributeKey('SwitchyardCluster', SearchAttributeType.KEYWORD);
export const SA_OPERATION = defineSearchAttributeKey('SwitchyardOperation', SearchAttributeType.KEYWORD);
export const SA_STEP = defineSearchAttributeKey('SwitchyardStep', SearchAttributeType.KEYWORD);
export const SA_WAITING_FOR = defineSearchAttributeKey('SwitchyardWaitingFor', SearchAttributeType.KEYWORD);

/** The watch's verdict at its last probe: ok, warning, primary-failing, partition, unconfirmed, staged, split-brain. */
export const SA_VERDICT = defineSearchAttributeKey('SwitchyardVerdict', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [SA_CLUSTER, SA_OPERATION, SA_STEP, SA_WAITING_FOR, SA_VERDICT];
