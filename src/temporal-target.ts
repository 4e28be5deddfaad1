/**
 * Where switchyard's Temporal is and which task queue its worker polls: what the worker and every
 * client command share. Kept apart from src/worker.ts so a command that only talks to Temporal
 * does not load the worker SDK, the activities and their libraries (a second of start-up).
 * The TLS, API key and codec parts are resolved by src/temporal-access.ts.
 */
import type { DataConverter } from '@temporalio/common';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';

export const TASK_QUEUE = 'switchyard';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** TLS to the frontend: true for the system's roots, or a CA, a client certificate and a server name. */
  tls?: TLSConfig | true;
  /** Sent as `Authorization: Bearer …` (never logged). */
  apiKey?: string;
  /** Encrypts and decrypts payloads (src/codec); absent: payloads are JSON in clear. */
  dataConverter?: DataConverter;
  /** What is on, for logs and status lines: never a value. */
  features?: string[];
}

export function temporalTarget(opts: { address?: string; namespace?: string } = {}, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  return {
    // An empty variable counts as unset: a blank namespace only fails later, obscurely.
    address: opts.address || env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    namespace: opts.namespace || env.TEMPORAL_NAMESPACE || 'default',
  };
}
