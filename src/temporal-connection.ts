/**
 * How every switchyard process connects to Temporal as a client (CLI, console, worker's own
 * client, demo): the SDK's gRPC retries, plus a guard for a call retried after its connection was
 * closed. The SDK's retry interceptor schedules a retry with a timer that Connection.close() does
 * not clear; when it fires, gRPC throws "Channel has been shut down" synchronously inside the
 * timer, off every awaited path, and the process dies of an uncaught exception after it finished
 * its work. The guard makes that retry a call that never answers: its connection is gone, and
 * reporting any final status back through the SDK's retry interceptor throws there too (it then
 * calls a message callback only a first attempt that got a message has set).
 */
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ConnectionOptions, type ConnectionLike } from '@temporalio/client';
import type { TemporalTarget } from './temporal-target';
import { tlsProblem } from './temporal-tls-diagnosis';

const SHUT_DOWN = /Channel has been shut down/;

type CallInterface = ConstructorParameters<typeof InterceptingCall>[0];

/** A call on a closed connection: it sends nothing and never answers. */
function closedCall(): CallInterface {
  return {
    cancelWithStatus: () => undefined,
    getPeer: () => '',
    start: () => undefined,
    sendMessageWithContext: () => undefined,
    sendMessage: () => undefined,
    startRead: () => undefined,
    halfClose: () => undefined,
    getAuthContext: () => null,
  };
}

/** Inside the retry interceptor: a (re)try on a closed connection goes nowhere instead of throwing. */
export const closedConnectionGuard: Interceptor = (options, nextCall) => {
  try {
    return new InterceptingCall(nextCall(options));
  } catch (err) {
    if (!SHUT_DOWN.test(String((err as Error)?.message))) throw err;
    return new InterceptingCall(closedCall());
  }
};

/** The target's TLS and API key as connection options (the client's and the worker's native connection take the same). */
export function credentials(target: Pick<TemporalTarget, 'tls' | 'apiKey'>): { tls?: TemporalTarget['tls']; apiKey?: string } {
  return { ...(target.tls ? { tls: target.tls } : {}), ...(target.apiKey ? { apiKey: target.apiKey } : {}) };
}

/** Connection options for a Temporal client: the target's address, TLS and API key (a bare address: neither). */
export function clientConnectionOptions(target: TemporalTarget | string, extra: Omit<ConnectionOptions, 'address' | 'interceptors'> = {}): ConnectionOptions {
  const t: Pick<TemporalTarget, 'address' | 'tls' | 'apiKey'> = typeof target === 'string' ? { address: target } : target;
  return { ...extra, address: t.address, ...credentials(t), interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), closedConnectionGuard] };
}

/** A client on `connection` in the target's namespace, with its codec (so it reads and writes what the worker does). */
export function targetClient(target: TemporalTarget, connection: ConnectionLike): Client {
  return new Client({ connection, namespace: target.namespace, ...(target.dataConverter ? { dataConverter: target.dataConverter } : {}) });
}

/**
 * Connection.connect, and when it fails on a TLS target, the TLS reason (tlsProblem) instead of
 * grpc-js's "Failed to connect before the deadline".
 */
export async function connectClient(target: TemporalTarget, extra: Omit<ConnectionOptions, 'address' | 'interceptors'> = {}): Promise<Connection> {
  try {
    return await Connection.connect(clientConnectionOptions(target, extra));
  } catch (err) {
    const problem = await tlsProblem(target).catch(() => null);
    // No cause: callers report an error's innermost cause, which would be grpc-js's message again.
    if (problem) throw new Error(problem);
    throw err;
  }
}
