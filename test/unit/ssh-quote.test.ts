import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { commandLine, quote, substitute } from '../../src/activities/ssh/quote';

/** What `sh -c LINE` passes to a program as argv (NUL-separated so newlines survive). */
function shArgv(line: string): string[] {
  const out = execFileSync('sh', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

/** Runs the quoted line as a real command and reads back the argv the program saw. */
function roundTrip(argv: string[]): string[] {
  const line = commandLine(['node', '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', ...argv]);
  return JSON.parse(execFileSync('sh', ['-c', line], { encoding: 'utf8' })) as string[];
}

const HOSTILE = [
  "it's",
  "'",
  "''",
  '"double"',
  '$(touch /tmp/switchyard-test-pwned)',
  '`id`',
  '$HOME',
  '${PATH}',
  'a b  c',
  ' leading and trailing ',
  '',
  'line1\nline2',
  '\n',
  'tab\there',
  'semi;colon && or || pipe | amp &',
  '> redirect < in',
  '*',
  '~',
  '#comment',
  '-n',
  '--flag=value',
  '\\back\\slash\\',
  'glob?[a-z]',
  '!bang',
  'ünïcödé ✓',
  'mixed \'single\' and "double" and $(sub) and `tick`',
];

describe('quote / commandLine', () => {
  it('every hostile argument round-trips exactly through sh -c', () => {
    assert.deepEqual(roundTrip(HOSTILE), HOSTILE);
  });

  it('each argument stays one argument (printf sees the same vector)', () => {
    for (const a of HOSTILE) assert.deepEqual(shArgv(quote(a)), [a], `argument ${JSON.stringify(a)}`);
  });

  it('command substitution in an argument is not executed', () => {
    const marker = `/tmp/switchyard-test-quote-${process.pid}`;
    execFileSync('sh', ['-c', commandLine(['echo', `$(touch ${marker})`, `\`touch ${marker}\``])]);
    assert.throws(() => execFileSync('test', ['-e', marker]));
  });

  it('plain words stay readable; empty strings become an explicit empty argument', () => {
    assert.equal(commandLine(['systemctl', 'start', 'app.service', '--now']), 'systemctl start app.service --now');
    assert.equal(quote(''), "''");
    assert.equal(quote("it's"), `'it'\\''s'`);
  });

  it('refuses what no command line can carry', () => {
    assert.throws(() => quote('a\0b'), /NUL/);
    assert.throws(() => commandLine([]), /empty command/);
  });
});

describe('substitute', () => {
  it('replaces placeholders inside elements before quoting, so values stay one argument', () => {
    const argv = substitute(['switch-to', '--site={site}', '{address}:{port}', 'literal'], { site: 'dc 2', address: "127.0.0.1'; rm -rf /", port: '5432' });
    assert.deepEqual(argv, ['switch-to', '--site=dc 2', "127.0.0.1'; rm -rf /:5432", 'literal']);
    assert.deepEqual(roundTrip(argv), argv);
  });

  it('leaves braces that name no variable alone (awk programs, JSON)', () => {
    assert.deepEqual(substitute(['awk', '{print $1}', '{print}', '{"a":1}'], { site: 'x' }), ['awk', '{print $1}', '{print}', '{"a":1}']);
  });

  it('does not re-expand placeholders that appear in substituted values', () => {
    assert.deepEqual(substitute(['{a}{b}'], { a: '{b}', b: 'B' }), ['{b}B']);
  });
});
