/**
 * deploy/prometheus: the scrape config, the alert rules and their unit tests, checked by promtool
 * (Debian's prometheus package, which scripts/setup.sh installs: without it these tests fail and
 * say so, they never skip), and every switchyard_* name they use checked against switchyard's
 * metric catalog (src/contract/metrics.ts), so that renaming a metric breaks this test instead of
 * silently leaving an alert that can never fire.
 *
 * Also: every alert has a severity and says what to run, each one is shown firing and not firing
 * in the promtool tests, and those tests fail when an alert can no longer fire (the rules are run
 * once more with every expression replaced by one that never matches).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { METRICS } from '../../src/contract/metrics';

const ROOT = resolve(__dirname, '../..');
const CONFIG = 'deploy/prometheus/prometheus.yml';
const RULES = 'deploy/prometheus/rules/switchyard.yml';
const TESTS = 'deploy/prometheus/tests/switchyard.test.yml';
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
}
interface TestFile {
  rule_files: string[];
  tests: { interval?: string; input_series: { series: string; values: string }[]; alert_rule_test?: AlertTest[] }[];
}
interface PromConfig {
  global?: { scrape_interval?: string; evaluation_interval?: string };
  rule_files?: string[];
  scrape_configs: { job_name: string; scrape_interval?: string; metrics_path?: string; static_configs?: { targets: string[] }[] }[];
}

const rules = parseYaml(read(RULES)) as RuleFile;
const alerts = rules.groups.flatMap((g) => g.rules);
const tests = parseYaml(read(TESTS)) as TestFile;
const config = parseYaml(read(CONFIG)) as PromConfig;

// --- promtool: found where setup put it, or the test fails saying how to get it -----------------

function findPromtool(): string | null {
  const pathsFile = join(ROOT, '.tools/paths.json');
  if (existsSync(pathsFile)) {
    const p = (JSON.parse(readFileSync(pathsFile, 'utf8')) as Record<string, unknown>).promtool;
    if (typeof p === 'string' && p !== '' && existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : null;
}
const PROMTOOL = findPromtool();

function promtool(...args: string[]): { status: number | null; output: string } {
  if (!PROMTOOL)
    assert.fail("promtool is not installed: run `npm run setup` (it installs Debian's prometheus package, which has promtool), then this test again");
  const r = spawnSync(PROMTOOL, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// --- metric names against the catalog -----------------------------------------------------------

/** Every name a scrape of the worker can show for switchyard's metrics. */
export function exposedNames(): Set<string> {
  const out = new Set<string>();
  for (const m of Object.values(METRICS)) {
    if (m.kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) out.add(`${m.exposed}${suffix}`);
    else out.add(m.exposed);
  }
  return out;
}

/** The switchyard_* names in every string of a parsed YAML document (comments are not strings). */
export function switchyardNames(doc: unknown): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown) => {
    if (typeof v === 'string') for (const m of v.matchAll(/\bswitchyard_[a-z0-9_]+/g)) out.add(m[0]);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(doc);
  return out;
}

function unknownNames(doc: unknown): string[] {
  const known = exposedNames();
  return [...switchyardNames(doc)].filter((n) => !known.has(n)).sort();
}

// =================================================================================================

describe('deploy/prometheus with promtool', () => {
  it('promtool check config: the scrape config is valid and loads the rule file', () => {
    const r = promtool('check', 'config', CONFIG);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
    assert.match(r.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    assert.match(r.output, /Checking deploy\/prometheus\/rules\/switchyard\.yml/, 'rule_files resolve relative to the config file');
  });

  it('promtool check rules: the rules parse and lint clean', () => {
    const r = promtool('check', 'rules', RULES);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    assert.doesNotMatch(r.output, /WARNING|FAILED/, r.output);
  });

  it('promtool test rules: every unit test passes', () => {
    const r = promtool('test', 'rules', TESTS);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('the unit tests fail when no alert can fire (each firing case is checked)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-prom-'));
    dirs.push(dir);
    cpSync(join(ROOT, 'deploy/prometheus'), dir, { recursive: true });
    const never: RuleFile = { groups: rules.groups.map((g) => ({ ...g, rules: g.rules.map((x) => ({ ...x, expr: 'vector(1) == 0' })) })) };
    writeFileSync(join(dir, 'rules/switchyard.yml'), JSON.stringify(never));
    const r = promtool('test', 'rules', join(dir, 'tests/switchyard.test.yml'));
    assert.notEqual(r.status, 0, 'promtool test rules passed with rules that never fire');
    const failed = new Set([...r.output.matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    for (const a of alerts) assert.ok(failed.has(a.alert as string), `no unit test notices that ${a.alert} no longer fires`);
  });
});

describe('deploy/prometheus against the metric catalog', () => {
  it('every switchyard_* name in the rules is a metric the worker exposes', () => {
    const used = switchyardNames(rules);
    assert.ok(used.size >= 8, `too few switchyard metrics found in the rules: ${[...used].join(', ')}`);
    assert.deepEqual(unknownNames(rules), [], `not in src/contract/metrics.ts (by exposed name; counters end in _total)`);
  });

  it('every switchyard_* name in the promtool tests is a metric the worker exposes', () => {
    assert.ok(switchyardNames(tests).size >= 8);
    assert.deepEqual(unknownNames(tests), [], `not in src/contract/metrics.ts (by exposed name; counters end in _total)`);
  });

  it('the name check catches a renamed metric, a counter without _total and a histogram suffix on a gauge', () => {
    const doc = {
      expr: 'switchyard_backup_last_restorable_seconds > 0 and switchyard_runs > 0 and switchyard_checkpoint_overdue_count > 0',
      ok: 'switchyard_runs_total switchyard_run_duration_seconds_bucket switchyard_failover_data_lost_bytes_sum switchyard_checkpoint_overdue',
    };
    assert.deepEqual(unknownNames(doc), ['switchyard_backup_last_restorable_seconds', 'switchyard_checkpoint_overdue_count', 'switchyard_runs']);
  });

  it('the input series use only labels the catalog gives each metric, plus the scrape and SDK labels', () => {
    const byName = new Map(
      Object.values(METRICS).flatMap((m) => [[m.exposed, m] as const, ...['_bucket', '_sum', '_count'].map((s) => [`${m.exposed}${s}`, m] as const)]),
    );
    const extra = new Set(['job', 'instance', 'namespace', 'task_queue', 'workflow_type', 'le']);
    for (const t of tests.tests)
      for (const s of t.input_series) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$/.exec(s.series);
        assert.ok(m, `unexpected series syntax: ${s.series}`);
        const def = byName.get(m[1]);
        if (!def) continue; // up{…}
        const labels = [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((x) => x[1]);
        for (const l of labels) assert.ok(def.labels.includes(l) || extra.has(l), `${s.series}: ${def.exposed} has no label "${l}"`);
        for (const l of def.labels) assert.ok(labels.includes(l), `${s.series}: ${def.exposed} always has the label "${l}"`);
      }
  });
});

describe('deploy/prometheus: what the rules and tests promise', () => {
  it('the scrape config scrapes the worker every 15 s under the job the rules select', () => {
    const job = config.scrape_configs.find((j) => j.job_name === 'switchyard-worker');
    assert.ok(job, 'no scrape job "switchyard-worker"');
    assert.equal(job.scrape_interval ?? config.global?.scrape_interval, '15s');
    assert.deepEqual(
      job.static_configs?.flatMap((s) => s.targets),
      ['worker:9464'],
    );
    assert.deepEqual(config.rule_files, ['rules/*.yml']);
    const upSelectors = alerts.flatMap((a) => [...a.expr.matchAll(/\bup\{job="([^"]+)"\}/g)].map((m) => m[1]));
    assert.ok(upSelectors.length > 0, 'no rule watches up{job=…}');
    for (const j of upSelectors) assert.equal(j, job.job_name, `a rule selects up{job="${j}"}, which prometheus.yml does not scrape`);
  });

  it('every alert has a unique name, a severity, and a summary and description that say what to run', () => {
    const names = alerts.map((a) => a.alert);
    assert.equal(new Set(names).size, names.length, `duplicate alert names: ${names.join(', ')}`);
    for (const a of alerts) {
      assert.ok(a.alert && /^Switchyard[A-Z][A-Za-z]+$/.test(a.alert), `not an alert named Switchyard…: ${JSON.stringify(a)}`);
      assert.match(
        a.labels?.severity ?? '',
        /^(critical|warning)$|^\{\{ if .* \}\}(critical|warning)\{\{ else \}\}(critical|warning)\{\{ end \}\}$/,
        `${a.alert}: severity`,
      );
      assert.ok((a.annotations?.summary ?? '').length > 10, `${a.alert}: no summary`);
      assert.match(a.annotations?.description ?? '', /`(switchyard|docker compose) [^`]+`/, `${a.alert}: the description names no command to run`);
    }
    const lag = alerts.find((a) => a.alert === 'SwitchyardReplicationLagHigh');
    assert.equal(lag?.for, '5m', 'the lag alert fires after 5 minutes above the bound');
  });

  it('the promtool tests show every alert firing and not firing', () => {
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const ruleNames = new Set(alerts.map((a) => a.alert as string));
    for (const c of cases) assert.ok(ruleNames.has(c.alertname), `a test names ${c.alertname}, which is not an alert in ${RULES}`);
    for (const name of ruleNames) {
      const mine = cases.filter((c) => c.alertname === name);
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${name}: no test where it fires`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${name}: no test where it does not fire`,
      );
      for (const c of mine)
        for (const e of c.exp_alerts ?? []) {
          assert.ok(e.exp_labels?.severity, `${name} at ${c.eval_time}: the expected alert names no severity`);
          assert.ok(e.exp_annotations?.summary && e.exp_annotations.description, `${name} at ${c.eval_time}: the expected annotations are not checked`);
        }
    }
  });

  it('series recorded from workflow code carry the SDK labels in the tests, as in a real scrape', () => {
    const workflowRecorded = new Set(
      Object.values(METRICS)
        .filter((m) => m.name !== METRICS.backupMaxRestorableAge.name && m.name !== METRICS.replicationMaxLagBytes.name)
        .map((m) => m.exposed),
    );
    let seen = 0;
    for (const t of tests.tests)
      for (const s of t.input_series) {
        const name = s.series.split('{')[0];
        if (!workflowRecorded.has(name)) continue;
        seen++;
        for (const l of ['namespace', 'task_queue', 'workflow_type', 'job', 'instance'])
          assert.match(s.series, new RegExp(`[{,]${l}="[^"]+"`), `${s.series}: no ${l} label`);
      }
    assert.ok(seen > 10);
  });
});
