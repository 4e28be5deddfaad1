/**
 * Why a TLS connection to Temporal fails, in words a person can act on: grpc-js reports every
 * handshake failure only as "Failed to connect before the deadline" (src/temporal-connection.ts's
 * connectClient asks here when a connection to a TLS target fails).
 */
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TemporalTarget } from './temporal-target';

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
