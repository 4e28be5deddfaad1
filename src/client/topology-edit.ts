/**
 * Changing the topology file from a command (`operator add`, `operator keygen`). Only the
 * top-level sections a change touches (`operators`, `console`) are written anew; every other byte
 * of the file, comments and layout included, stays as it was. The result is validated before
 * anything is written, and the file is replaced atomically with its mode kept.
 */
import { renameSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Document, isMap, isScalar, parseDocument, type Pair } from 'yaml';
import { parseTopology } from '../topology/load';

/** Sets each `[path, value]` in the file; throws (writing nothing) when the result is not a valid topology. */
export function editTopology(file: string, changes: [path: string[], value: unknown][]): void {
  const text = readFileSync(file, 'utf8');
  const out = editedText(text, changes, file);
  parseTopology(out, file);
  const tmp = `${file}.switchyard-${process.pid}.tmp`;
  try {
    writeFileSync(tmp, out, { mode: statSync(file).mode & 0o777 });
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The text with the changes applied: each touched top-level section re-rendered in its place, or appended. */
export function editedText(text: string, changes: [path: string[], value: unknown][], file = 'topology'): string {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message.split('\n')[0]}`);
  if (!isMap(doc.contents)) throw new Error(`${file}: the topology is not a mapping`);
  for (const [path, value] of changes) doc.setIn(path, value);
  const touched = [...new Set(changes.map(([path]) => path[0]))];
  // Splice from the end of the file backwards so earlier offsets stay right.
  const edits: { from: number; to: number; text: string }[] = [];
  for (const key of touched) {
    const pair = doc.contents.items.find((p) => isScalar(p.key) && p.key.value === key) as Pair | undefined;
    const section = new Document({ [key]: doc.get(key) }).toString({ lineWidth: 0 });
    const keyRange = isScalar(pair?.key) ? pair.key.range : undefined;
    const valueRange = (pair?.value as { range?: [number, number, number] } | null)?.range;
    if (keyRange && valueRange && text.slice(0, keyRange[0]).match(/(^|\n)$/)) {
      // The node's range ends before the newline that closes it (range[1]); keep what follows as it was.
      const end = valueRange[1];
      edits.push({ from: keyRange[0], to: end, text: section.replace(/\n$/, text.slice(end - 1, end) === '\n' ? '\n' : '') });
    } else edits.push({ from: text.length, to: text.length, text: `${text.endsWith('\n') || text === '' ? '' : '\n'}${section}` });
  }
  let out = text;
  for (const e of edits.sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.text + out.slice(e.to);
  return out;
}
