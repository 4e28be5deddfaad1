/** The topology's JSON Schema, generated from the zod schema, for editors (yaml-language-server). */
import { z } from 'zod';
import { topologySchema } from './schema';

export function jsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(topologySchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://switchyard.invalid/schema/topology.json',
    title: 'switchyard topology',
  };
}
