/**
 * resolveTemporal (src/temporal-access.ts): how flags, the temporal CLI's environment variables
 * and the topology's `temporal:` section combine, and what it refuses. Flag over environment over
 * topology, setting by setting; a client certificate never without its key; an API key turns TLS
 * on; what it says about the target (features) never holds a secret; an unreadable file is named.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import { describeTarget, resolveTemporal } from '../../src/temporal-access';
import type { TemporalTarget } from '../../src/temporal-target';
import { temporalSchema, type TemporalConfig } from '../../src/topology/temporal';

let dir: string;
/** A file in the test's temp dir holding `text`; its path. */
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const tlsOf = (t: TemporalTarget): TLSConfig => {
  assert.ok(t.tls && t.tls !== true, `expected a TLS configuration, got ${JSON.stringify(t.tls)}`);
  return t.tls;
};
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString('utf8'));
const rejection = (p: Promise<unknown>): Promise<Error> =>
  p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e as Error,
  );

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'switchyard-test-unit-temporal-access-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveTemporal', () => {
  it('without any setting: the local frontend, namespace "default", no TLS, nothing to show', async () => {
    const t = await resolveTemporal({}, undefined, {});
    assert.deepEqual(t, { address: '127.0.0.1:7233', namespace: 'default' });
    assert.equal(describeTarget(t), '127.0.0.1:7233');
  });

  it('address and namespace: the flag, else the environment, else the topology (an empty value counts as unset)', async () => {
    const config: TemporalConfig = { address: 'topology:7233', namespace: 'from-topology' };
    const env = { TEMPORAL_ADDRESS: 'env:7233', TEMPORAL_NAMESPACE: 'from-env' };
    assert.deepEqual(await resolveTemporal({ address: 'flag:7233', namespace: 'from-flag' }, config, env), { address: 'flag:7233', namespace: 'from-flag' });
    assert.deepEqual(await resolveTemporal({}, config, env), { address: 'env:7233', namespace: 'from-env' });
    assert.deepEqual(await resolveTemporal({ address: '' }, config, { TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '' }), {
      address: 'topology:7233',
      namespace: 'from-topology',
    });
  });

  it('the server CA, client certificate and key, and server name: the flag, else the environment, else the topology', async () => {
    const config: TemporalConfig = {
      tls: {
        serverCa: { file: file('topology-ca.pem', 'CA from the topology\n') },
        clientCert: { file: file('topology.crt', 'cert from the topology\n') },
        clientKey: { env: 'TOPOLOGY_CLIENT_KEY' },
        serverName: 'topology.example',
      },
    };
    const env: NodeJS.ProcessEnv = {
      TOPOLOGY_CLIENT_KEY: 'key from the topology',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: file('env-ca.pem', 'CA from the environment'),
      TEMPORAL_TLS_CLIENT_CERT_PATH: file('env.crt', 'cert from the environment'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: file('env.key', 'key from the environment'),
      TEMPORAL_TLS_SERVER_NAME: 'env.example',
    };
    const flags = {
      tlsCaPath: file('flag-ca.pem', 'CA from a flag'),
      tlsCertPath: file('flag.crt', 'cert from a flag'),
      tlsKeyPath: file('flag.key', 'key from a flag'),
      tlsServerName: 'flag.example',
    };
    const show = (t: TemporalTarget) => {
      const tls = tlsOf(t);
      return [text(tls.serverRootCACertificate), text(tls.clientCertPair?.crt), text(tls.clientCertPair?.key), tls.serverNameOverride];
    };

    assert.deepEqual(show(await resolveTemporal(flags, config, env)), ['CA from a flag', 'cert from a flag', 'key from a flag', 'flag.example']);
    assert.deepEqual(show(await resolveTemporal({}, config, env)), [
      'CA from the environment',
      'cert from the environment',
      'key from the environment',
      'env.example',
    ]);
    const onlyTopology = { TOPOLOGY_CLIENT_KEY: env.TOPOLOGY_CLIENT_KEY };
    // A secret reference's trailing newline is not part of it.
    assert.deepEqual(show(await resolveTemporal({}, config, onlyTopology)), [
      'CA from the topology',
      'cert from the topology',
      'key from the topology',
      'topology.example',
    ]);
    // Setting by setting: a flag's CA beside the topology's client certificate.
    assert.deepEqual(show(await resolveTemporal({ tlsCaPath: flags.tlsCaPath }, config, onlyTopology)), [
      'CA from a flag',
      'cert from the topology',
      'key from the topology',
      'topology.example',
    ]);
    const t = await resolveTemporal({}, config, onlyTopology);
    assert.deepEqual(t.features, ['mTLS']);
  });

  it('TLS is on with --tls, TEMPORAL_TLS, any TLS setting or a temporal.tls section; with nothing more, the system roots', async () => {
    for (const [flags, config, env] of [
      [{ tls: true }, undefined, {}],
      [{}, undefined, { TEMPORAL_TLS: 'true' }],
      [{}, undefined, { TEMPORAL_TLS: '1' }],
      [{ tlsServerName: 'temporal.example' }, undefined, {}],
      [{}, { tls: {} }, {}],
    ] as const) {
      const t = await resolveTemporal(flags, config, env);
      assert.ok(t.tls, JSON.stringify({ flags, config, env }));
      assert.deepEqual(t.features, ['TLS']);
    }
    assert.equal((await resolveTemporal({ tls: true }, undefined, {})).tls, true);
    assert.equal((await resolveTemporal({}, undefined, { TEMPORAL_TLS: 'false' })).tls, undefined);
  });

  it('a client certificate without its key (or a key without its certificate) is refused, naming both settings', async () => {
    const crt = file('half.crt', 'cert');
    const key = file('half.key', 'key');
    for (const [flags, env] of [
      [{ tlsCertPath: crt }, {}],
      [{ tlsKeyPath: key }, {}],
      [{}, { TEMPORAL_TLS_CLIENT_CERT_PATH: crt }],
      [{}, { TEMPORAL_TLS_CLIENT_KEY_PATH: key }],
    ] as const) {
      const err = await rejection(resolveTemporal(flags, undefined, env));
      assert.equal(
        err.message,
        'TLS client certificate and key go together: give both --tls-cert-path and --tls-key-path (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)',
        JSON.stringify({ flags, env }),
      );
    }
    // A flag's certificate with the environment's key is a pair.
    const t = await resolveTemporal({ tlsCertPath: crt }, undefined, { TEMPORAL_TLS_CLIENT_KEY_PATH: key });
    assert.equal(text(tlsOf(t).clientCertPair?.key), 'key');
    // The topology's schema refuses half a pair too.
    const parsed = temporalSchema.safeParse({ tls: { clientCert: { file: crt } } });
    assert.equal(parsed.success, false);
    assert.match(JSON.stringify(parsed.error?.issues), /temporal.tls.clientCert and temporal.tls.clientKey go together/);
  });

  it('an API key (file, environment or topology) is sent as a bearer token and turns TLS on', async () => {
    const keyFile = file('api-key', '  key-from-file\n');
    const cases: [Parameters<typeof resolveTemporal>[0], TemporalConfig | undefined, NodeJS.ProcessEnv, string][] = [
      [{ apiKeyFile: keyFile }, undefined, { TEMPORAL_API_KEY: 'key-from-env' }, 'key-from-file'],
      [{}, { apiKey: { env: 'TOPOLOGY_API_KEY' } }, { TEMPORAL_API_KEY: 'key-from-env', TOPOLOGY_API_KEY: 'key-from-topology' }, 'key-from-env'],
      [{}, { apiKey: { env: 'TOPOLOGY_API_KEY' } }, { TOPOLOGY_API_KEY: 'key-from-topology' }, 'key-from-topology'],
    ];
    for (const [flags, config, env, expected] of cases) {
      const t = await resolveTemporal(flags, config, env);
      assert.equal(t.apiKey, expected);
      assert.equal(t.tls, true, 'an API key is never sent in clear: TLS with the system roots');
      assert.deepEqual(t.features, ['TLS', 'API key']);
    }
    // With a CA as well, that CA.
    const t = await resolveTemporal({ tlsCaPath: file('api-ca.pem', 'the CA') }, undefined, { TEMPORAL_API_KEY: 'k' });
    assert.equal(text(tlsOf(t).serverRootCACertificate), 'the CA');
    assert.deepEqual(t.features, ['TLS', 'API key']);
  });

  it('an empty API key is refused', async () => {
    const err = await rejection(resolveTemporal({ apiKeyFile: file('empty-api-key', '\n') }, undefined, {}));
    assert.equal(err.message, 'the Temporal API key is empty');
  });

  it('what it shows of the target (features, describeTarget) holds no secret, path or certificate', async () => {
    const secrets = ['sekrit-api-key-4711', 'BEGIN CERTIFICATE sekrit-ca', 'BEGIN CERTIFICATE sekrit-cert', 'BEGIN PRIVATE KEY sekrit-key'];
    const paths = [file('s-ca.pem', secrets[1]), file('s.crt', secrets[2]), file('s.key', secrets[3]), file('s-api-key', secrets[0])];
    const fromFlags = await resolveTemporal({ tlsCaPath: paths[0], tlsCertPath: paths[1], tlsKeyPath: paths[2], apiKeyFile: paths[3] }, undefined, {});
    const fromTopology = await resolveTemporal(
      {},
      { tls: { serverCa: { file: paths[0] }, clientCert: { file: paths[1] }, clientKey: { env: 'K' } }, apiKey: { env: 'A' } },
      { K: secrets[3], A: secrets[0] },
    );
    for (const t of [fromFlags, fromTopology]) {
      assert.deepEqual(t.features, ['mTLS', 'API key']);
      const shown = JSON.stringify(t.features) + describeTarget(t);
      for (const s of [...secrets, ...paths, 'sekrit']) assert.ok(!shown.includes(s), `"${s}" shown in ${shown}`);
    }
  });

  it('a file that cannot be read is named, with what it was for and why', async () => {
    const missing = join(dir, 'no-such-file.pem');
    const cases: [Parameters<typeof resolveTemporal>[0], TemporalConfig | undefined, string][] = [
      [{ tlsCaPath: missing }, undefined, `TLS server CA ${missing}: cannot read the file (ENOENT)`],
      [{ tlsCertPath: missing, tlsKeyPath: file('ok.key', 'k') }, undefined, `TLS client certificate ${missing}: cannot read the file (ENOENT)`],
      [{ tlsCertPath: file('ok.crt', 'c'), tlsKeyPath: missing }, undefined, `TLS client key ${missing}: cannot read the file (ENOENT)`],
      [{ apiKeyFile: dir }, undefined, `API key ${dir}: cannot read the file (EISDIR)`],
      [{}, { tls: { serverCa: { file: missing } } }, `secret { file: ${missing} } (temporal.tls.serverCa): cannot read the file (ENOENT)`],
      [
        {},
        { tls: { clientCert: { file: missing }, clientKey: { file: file('ok2.key', 'k') } } },
        `secret { file: ${missing} } (temporal.tls.clientCert): cannot read the file (ENOENT)`,
      ],
      [{}, { apiKey: { env: 'NO_SUCH_VARIABLE' } }, 'secret { env: NO_SUCH_VARIABLE } (temporal.apiKey): environment variable NO_SUCH_VARIABLE is not set'],
    ];
    for (const [flags, config, expected] of cases) assert.equal((await rejection(resolveTemporal(flags, config, {}))).message, expected);
  });
});
