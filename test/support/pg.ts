/** A query on one database node as the tool's user, with the test's own client (never through the activities). */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Topology } from '../../src/topology/schema';

export async function nodeQuery<T extends Record<string, unknown>>(
  top: Topology,
  cluster: string,
  nodeName: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = top.clusters[cluster];
  const n = c.postgres.nodes[nodeName];
  if (!n) throw new Error(`no database node ${nodeName} in cluster ${cluster}`);
  const password = c.postgres.password?.file ? readFileSync(c.postgres.password.file, 'utf8').trim() : undefined;
  const client = new pg.Client({ host: n.host, port: n.port, user: c.postgres.user, password, database: c.postgres.database, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end().catch(() => undefined);
  }
}
