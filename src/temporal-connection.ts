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
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, type ConnectionOptions, type ConnectionLike } from '@temporalio/client';
import type { TemporalTarget } from './temporal-target';

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

/** Connection options for a Temporal client: the target's address, TLS and API key (a bare address: neither). */
export function clientConnectionOptions(target: TemporalTarget | string, extra: Omit<ConnectionOptions, 'address' | 'interceptors'> = {}): ConnectionOptions {
  const t = typeof target === 'string' ? { address: target } : target;
  return {
    ...extra,
    address: t.address,
    ...('tls' in t && t.tls ? { tls: t.tls } : {}),
    ...('apiKey' in t && t.apiKey ? { apiKey: t.apiKey } : {}),
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), closedConnectionGuard],
  };
}

/** A client on `connection` in the target's namespace, with its codec (so it reads and writes what the worker does). */
export function targetClient(target: TemporalTarget, connection: ConnectionLike): Client {
  return new Client({ connection, namespace: target.namespace, ...(target.dataConverter ? { dataConverter: target.dataConverter } : {}) });
}

const SERVER_NOT_TRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * Why a TLS connection to the target fails, in words a person can act on, or null when the TLS
 * handshake (and the moment after it, when a TLS 1.3 server refuses a client certificate) goes
 * through, or the failure is not TLS's. grpc-js reports every such failure only as "Failed to
 * connect before the deadline", so this shakes hands once more with Node's TLS and the same
 * CA, client certificate and server name, and reads the reason there.
 */
export async function tlsProblem(target: TemporalTarget, timeoutMs = 3000): Promise<string | null> {
  if (!target.tls) return null;
  const tls = target.tls === true ? {} : target.tls;
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(target.address);
  if (!m) return null;
  const [, host, port] = m;
  const serverName = tls.serverNameOverride ?? (isIP(host) ? undefined : host);
  const failure = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const sock = tlsConnect({
      host,
      port: Number(port),
      ALPNProtocols: ['h2'],
      ...(serverName ? { servername: serverName } : {}),
      ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
      ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
    });
    const done = (e: NodeJS.ErrnoException | null) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(e);
    };
    let timer = setTimeout(() => done(null), timeoutMs);
    // A TLS 1.3 server checks the client's certificate after the client's side of the handshake: its refusal is an alert just after.
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(null), 500);
    });
    sock.once('error', (e) => done(e));
  });
  if (!failure) return null;
  const code = failure.code ?? '';
  const reason = failure.message.replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):.*$/s, '$1').trim();
  const what = `TLS handshake with ${target.address} failed`;
  if (SERVER_NOT_TRUSTED.has(code))
    return `${what}: the server's certificate is not trusted (${reason}); give the CA that signed it with --tls-ca-path, TEMPORAL_TLS_SERVER_CA_CERT_PATH or temporal.tls.serverCa`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `${what}: the server's certificate is not valid now (${reason})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `${what}: the server's certificate is not for this name (${reason}); connect by a name it has, or set --tls-server-name, TEMPORAL_TLS_SERVER_NAME or temporal.tls.serverName`;
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (!tls.clientCertPair && /HANDSHAKE_FAILURE/.test(code)))
    return `${what}: the server requires a client certificate (${reason}); give one with --tls-cert-path and --tls-key-path, TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or temporal.tls.clientCert and clientKey`;
  if (
    tls.clientCertPair &&
    /^ERR_SSL_(TLSV1_ALERT_(UNKNOWN_CA|ACCESS_DENIED|DECRYPT_ERROR)|SSLV3_ALERT_(BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|HANDSHAKE_FAILURE))$/.test(
      code,
    )
  )
    return `${what}: the server refused the client certificate (${reason}); it must be signed by a CA the server trusts, and be valid now`;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG')
    return `${what}: the server does not answer in TLS (${reason}); is TLS on there? Without it, connect without --tls and the TLS settings`;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /^CERT_|_CERT/.test(code)) return `${what}: ${reason}`;
  return null; // refused, unreachable, timed out: not TLS's doing
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
