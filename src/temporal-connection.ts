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
import { defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ConnectionOptions } from '@temporalio/client';

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

/** Connection options for a Temporal client at `address`. */
export function clientConnectionOptions(address: string, extra: Omit<ConnectionOptions, 'address' | 'interceptors'> = {}): ConnectionOptions {
  return { ...extra, address, interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), closedConnectionGuard] };
}
