/**
 * The whole of how a switchyard process reaches Temporal, resolved once at its start: the address
 * and namespace, TLS (server CA, client certificate and key, server name), an API key, and the
 * payload codec that encrypts what switchyard writes. Command-line flags win, then the temporal
 * CLI's own environment variables (so one shell setup serves both), then the topology's
 * `temporal:` section. Certificates and keys are read here, in the process, from their secret
 * references; none of them is ever put in a workflow input, a log line or a status.
 */
import { readFile } from 'node:fs/promises';
import type { DataConverter } from '@temporalio/common';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { AesGcmCodec, parseCodecKey } from './codec/aes-gcm';
import { readSecret } from './secret-reader';
import { loadTopology } from './topology/load';
import type { CodecConfig, TemporalConfig } from './topology/temporal';
import { temporalTarget, type TemporalTarget } from './temporal-target';

/** The connection flags every command and the worker take (the temporal CLI's names). */
export interface AccessFlags {
  address?: string;
  namespace?: string;
  tls?: boolean;
  tlsCaPath?: string;
  tlsCertPath?: string;
  tlsKeyPath?: string;
  tlsServerName?: string;
  /** A file holding the API key (a key on the command line would show in `ps`). */
  apiKeyFile?: string;
}

async function readPath(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new Error(`${what} ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The payload codec the topology's `temporal.codec` describes, its keys read from their references. */
export async function codecFromConfig(config: CodecConfig, env: NodeJS.ProcessEnv = process.env): Promise<AesGcmCodec> {
  const keys = [];
  for (const k of config.keys) keys.push(parseCodecKey(k.id, await readSecret(k.key, `codec key "${k.id}"`, env)));
  return new AesGcmCodec(keys, config.encryptWith ? { encryptWith: config.encryptWith } : {});
}

/**
 * The failure converter every worker bundle, worker and client uses: failures' messages and stack
 * traces inside an encoded payload (src/codec/failure-converter.ts), so a codec encrypts them.
 */
export const FAILURE_CONVERTER_PATH = require.resolve('./codec/failure-converter');

/**
 * Payloads through the codec, and failures' messages and stack traces inside an encoded payload
 * too (an error message can name a host or a path).
 */
export function codecDataConverter(codec: AesGcmCodec): DataConverter {
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/** Resolves flags, environment and topology into one target. Errors say which setting and what was wrong. */
export async function resolveTemporal(flags: AccessFlags, config: TemporalConfig | undefined, env: NodeJS.ProcessEnv = process.env): Promise<TemporalTarget> {
  const base = temporalTarget(
    { address: flags.address || env.TEMPORAL_ADDRESS || config?.address, namespace: flags.namespace || env.TEMPORAL_NAMESPACE || config?.namespace },
    {},
  );
  const features: string[] = [];
  const pick = (flag: string | undefined, envName: string): string | undefined => flag || env[envName] || undefined;

  const caPath = pick(flags.tlsCaPath, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH');
  const certPath = pick(flags.tlsCertPath, 'TEMPORAL_TLS_CLIENT_CERT_PATH');
  const keyPath = pick(flags.tlsKeyPath, 'TEMPORAL_TLS_CLIENT_KEY_PATH');
  const serverName = pick(flags.tlsServerName, 'TEMPORAL_TLS_SERVER_NAME') ?? config?.tls?.serverName;
  if ((certPath === undefined) !== (keyPath === undefined))
    throw new Error(
      'TLS client certificate and key go together: give both --tls-cert-path and --tls-key-path (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)',
    );
  const tlsOn = flags.tls === true || /^(1|true|yes)$/i.test(env.TEMPORAL_TLS ?? '') || !!caPath || !!certPath || !!serverName || config?.tls !== undefined;

  const tls: TLSConfig = {};
  if (caPath) tls.serverRootCACertificate = await readPath(caPath, 'TLS server CA');
  else if (config?.tls?.serverCa) tls.serverRootCACertificate = Buffer.from(await readSecret(config.tls.serverCa, 'temporal.tls.serverCa', env));
  if (certPath && keyPath) tls.clientCertPair = { crt: await readPath(certPath, 'TLS client certificate'), key: await readPath(keyPath, 'TLS client key') };
  else if (config?.tls?.clientCert && config.tls.clientKey)
    tls.clientCertPair = {
      crt: Buffer.from(await readSecret(config.tls.clientCert, 'temporal.tls.clientCert', env)),
      key: Buffer.from(await readSecret(config.tls.clientKey, 'temporal.tls.clientKey', env)),
    };
  if (serverName) tls.serverNameOverride = serverName;

  let apiKey: string | undefined;
  if (flags.apiKeyFile) apiKey = (await readPath(flags.apiKeyFile, 'API key')).toString('utf8').trim();
  else if (env.TEMPORAL_API_KEY) apiKey = env.TEMPORAL_API_KEY.trim();
  else if (config?.apiKey) apiKey = (await readSecret(config.apiKey, 'temporal.apiKey', env)).trim();
  if (apiKey === '') throw new Error('the Temporal API key is empty');

  const target: TemporalTarget = { ...base };
  // An API key is a bearer token: never sent in clear, so it turns TLS on (as the temporal CLI does).
  if (tlsOn || apiKey) {
    target.tls = Object.keys(tls).length > 0 ? tls : true;
    features.push(tls.clientCertPair ? 'mTLS' : 'TLS');
  }
  if (apiKey) {
    target.apiKey = apiKey;
    features.push('API key');
  }
  if (config?.codec) {
    const codec = await codecFromConfig(config.codec, env);
    target.dataConverter = codecDataConverter(codec);
    features.push(`payloads encrypted (key "${codec.encryptKeyId}")`);
  }
  if (features.length > 0) target.features = features;
  return target;
}

/** The target a topology file describes (its `temporal:` section), with `flags` over it. */
export async function topologyTarget(configPath: string, flags: AccessFlags = {}, env: NodeJS.ProcessEnv = process.env): Promise<TemporalTarget> {
  return resolveTemporal(flags, loadTopology(configPath).temporal, env);
}

/** "127.0.0.1:7233 (mTLS, payloads encrypted (key "k2"))": for logs and errors. */
export function describeTarget(t: TemporalTarget): string {
  return `${t.address}${t.features?.length ? ` (${t.features.join(', ')})` : ''}`;
}
