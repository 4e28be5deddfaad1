/**
 * `switchyard codec-server`: the payload codec of the topology's `temporal.codec` behind HTTP, for
 * the Temporal Web UI (its codec endpoint setting, or the dev server's --ui-codec-endpoint) and
 * `temporal --codec-endpoint`. Runs until SIGINT or SIGTERM.
 */
import { startCodecServer } from '../codec/codec-server';
import { createLogger } from '../logging';
import { readSecret } from '../secret-reader';
import { codecFromConfig } from '../temporal-access';
import { splitListen } from '../topology/fields';
import { loadTopology } from '../topology/load';
import { UsageError } from './cli-common';

export async function runCodecServer(opts: { configPath: string; listen?: string; uiOrigins?: string[] }): Promise<void> {
  const top = loadTopology(opts.configPath);
  const cfg = top.temporal?.codec;
  if (!cfg)
    throw new UsageError(
      `${opts.configPath}: no temporal.codec section, so there is nothing to encrypt or decrypt with; add one:\n` +
        '  temporal:\n    codec:\n      keys:\n        - id: key-1\n          key: { file: /etc/switchyard/codec-key }   # openssl rand -hex 32 > /etc/switchyard/codec-key',
    );
  const listenText = opts.listen ?? cfg.server?.listen ?? '127.0.0.1:8888';
  const listen = splitListen(listenText);
  if (!listen) throw new UsageError(`--listen ${listenText}: expected host:port, e.g. 127.0.0.1:8888`);
  const codec = await codecFromConfig(cfg).catch((err: Error) => {
    throw new UsageError(`${opts.configPath}: temporal.codec: ${err.message}`);
  });
  const bearerToken = cfg.server?.token ? await readSecret(cfg.server.token, 'temporal.codec.server.token') : undefined;
  const uiOrigins = opts.uiOrigins ?? cfg.server?.uiOrigins ?? [];
  const logger = createLogger({ name: 'switchyard-codec-server' });
  const server = await startCodecServer({ listen, codec, uiOrigins, ...(bearerToken ? { bearerToken } : {}), logger });
  logger.info({ url: server.url, keys: codec.keyIds, encryptsWith: codec.encryptKeyId, uiOrigins, bearer: bearerToken !== undefined }, 'codec server started');
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  logger.info('codec server stopped');
}
