/** Writes schema/topology.schema.json from the zod schema (npm run schema). A unit test keeps it current. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonSchema } from '../src/topology/json-schema';

const out = join(__dirname, '..', 'schema', 'topology.schema.json');
mkdirSync(join(__dirname, '..', 'schema'), { recursive: true });
writeFileSync(out, `${JSON.stringify(jsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);
