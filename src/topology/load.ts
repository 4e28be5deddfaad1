/**
 * Finding, reading and validating the topology file. Every error names the file, the path inside
 * it (with line and column when the YAML has them) and what was expected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { topologySchema, type ClusterConfig, type Topology } from './schema';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: { path: string; line?: number; column?: number; message: string }[],
  ) {
    super(
      `invalid topology ${file}:\n` +
        problems.map((p) => `  ${file}${p.line ? `:${p.line}:${p.column}` : ''}: ${p.path || '(top level)'}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

/** The one way every command finds the topology: --config, else SWITCHYARD_CONFIG, else ./switchyard.yaml. */
export function resolveConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (flag) return resolve(cwd, flag);
  if (env.SWITCHYARD_CONFIG) return resolve(cwd, env.SWITCHYARD_CONFIG);
  return resolve(cwd, 'switchyard.yaml');
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** Parse YAML text and validate it; `file` is used in messages only. */
export function parseTopology(text: string, file: string): Topology {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return { path: '', line: pos?.line, column: pos?.col, message: `YAML syntax: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  const result = topologySchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigError(
    file,
    result.error.issues.map((issue: z.core.$ZodIssue) => {
      const node = nodeAt(doc.contents as YamlNode | null, issue.path);
      const pos = node?.range ? lines.linePos(node.range[0]) : undefined;
      return { path: formatPath(issue.path), line: pos?.line, column: pos?.col, message: describe(issue) };
    }),
  );
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `missing; ${lowerFirst(issue.message.replace(/^Invalid input: /, ''))}`;
  if (issue.code === 'invalid_key') return `${issue.issues[0]?.message ?? 'invalid key'}, got ${JSON.stringify(issue.input)}`;
  if (issue.code === 'invalid_value' && 'values' in issue && issue.message.startsWith('Invalid'))
    return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(issue.input)}`;
  // Never echo what was written where a secret reference belongs: it may be the secret itself.
  const secretish = issue.message.startsWith('inline secrets');
  const got = !secretish && issue.input !== undefined && typeof issue.input !== 'object' ? `, got ${JSON.stringify(issue.input)}` : '';
  return `${issue.message.replace(/^Invalid input: /, '')}${got}`;
}

function lowerFirst(s: string) {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The deepest YAML node along `path` (for line numbers); stops where the document ends. */
function nodeAt(root: YamlNode | null, path: readonly PropertyKey[]): YamlNode | undefined {
  let node: YamlNode | null | undefined = root;
  let last: YamlNode | undefined = root ?? undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = p.key as { value?: unknown } | null;
        return k !== null && typeof k === 'object' && String(k.value) === String(key);
      });
      node = pair?.value as YamlNode | null | undefined;
      if (!node) return (pair?.key as YamlNode | undefined) ?? last;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key] as YamlNode | undefined;
    } else return last;
    if (node) last = node;
  }
  return last;
}

export function loadTopology(path: string): Topology {
  if (!existsSync(path)) {
    throw new ConfigError(path, [
      {
        path: '',
        message:
          'file not found; pass --config PATH, set SWITCHYARD_CONFIG, ' +
          "or create ./switchyard.yaml (`npx switchyard sandbox up` prints a line that points a shell at the sandbox's)",
      },
    ]);
  }
  return parseTopology(readFileSync(path, 'utf8'), path);
}

export function getCluster(top: Topology, name: string): ClusterConfig {
  const c = top.clusters[name];
  if (!c)
    throw new Error(
      `unknown cluster "${name}"; the topology has: ${Object.keys(top.clusters)
        .map((k) => `"${k}"`)
        .join(', ')}`,
    );
  return c;
}

/** The database node name of a site (the schema guarantees exactly one). */
export function nodeOfSite(c: ClusterConfig, site: string): string {
  const entry = Object.entries(c.postgres.nodes).find(([, n]) => n.site === site);
  if (!entry) throw new Error(`site "${site}" has no database node`);
  return entry[0];
}
