// A node:test reporter beside TAP: when each test file started and ended (seconds since the run
// began) and how long it took, one line per file, longest first. scripts/test.sh writes it per
// phase, so the order of the integration files (longest first) can be checked against the facts.
export default async function* fileTimes(source) {
  const t0 = Date.now();
  const files = new Map();
  for await (const ev of source) {
    const d = ev.data;
    if (!d?.file || d.name !== d.file) continue;
    const at = (Date.now() - t0) / 1000;
    if (ev.type === 'test:dequeue') files.set(d.file, { start: at, end: null });
    else if (ev.type === 'test:complete' && files.has(d.file)) files.get(d.file).end = at;
  }
  const rows = [...files].map(([file, t]) => ({ file, ...t, took: (t.end ?? t.start) - t.start }));
  for (const r of rows.sort((a, b) => b.took - a.took))
    yield `# file ${r.took.toFixed(1).padStart(6)} s  (${r.start.toFixed(0)}–${r.end === null ? '?' : r.end.toFixed(0)} s)  ${r.file.replace(`${process.cwd()}/`, '')}\n`;
}
