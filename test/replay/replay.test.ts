/**
 * Replay tests (DESIGN brief: "Workflows stay deterministic; change a released workflow with
 * patching and keep replay tests of recorded histories green"). Every history recorded in
 * test/replay/histories (scripts/record-histories.ts; README beside this file) is replayed against
 * the current workflow code, bundled as the worker bundles it. No server: the replay worker feeds
 * the history to the workflow code and compares the commands it issues with the recorded events.
 * A DeterminismViolationError, or any other replay failure, fails the test.
 *
 * Histories recorded with encryption on (the `encrypted` scenario) hold ciphertext made with the
 * test key in fixtures/codec-test.key: every replay runs with that key's codec (an unencrypted
 * history passes through it unchanged), and one without the codec shows they are encrypted.
 *
 * The check is shown to bite: the same histories replayed against a deliberately reordered
 * `failover` (fixtures/reordered-failover.ts, bundled separately) are rejected with a determinism
 * error, while that bundle's untouched workflows still replay cleanly.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { bundleWorkflowCode, DefaultLogger, ReplayError, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { ENCRYPTED_ENCODING } from '../../src/codec/aes-gcm';
import { codecDataConverter } from '../../src/temporal-access';
import { testCodec } from './codec-key';
import { workflowBundle } from '../support/temporal';
import { historyFromJSON, type History } from './history-json';

const HISTORIES = join(__dirname, 'histories');
const MANIFEST = join(__dirname, 'manifest.json');

interface Recorded {
  name: string;
  workflowId: string;
  workflowType: string;
  history: History;
}

function workflowTypeOf(json: { events?: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[] }): string {
  return json.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
}

/** Every history file, with the workflow id it ran under (manifest.json; else the file's name). */
function loadHistories(): Recorded[] {
  const manifest = existsSync(MANIFEST) ? (JSON.parse(readFileSync(MANIFEST, 'utf8')) as Record<string, { workflowId?: string }>) : {};
  const files = existsSync(HISTORIES)
    ? readdirSync(HISTORIES)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
  return files.map((f) => {
    const name = basename(f, '.json');
    const json = JSON.parse(readFileSync(join(HISTORIES, f), 'utf8')) as Parameters<typeof workflowTypeOf>[0];
    return { name, workflowId: manifest[name]?.workflowId ?? name, workflowType: workflowTypeOf(json), history: historyFromJSON(json) };
  });
}

const histories = loadHistories();
const replayLogger = new DefaultLogger('ERROR');
// Each replay starts and stops a worker (state changes at INFO) and a rejected one logs its failure
// (WARN): the test's own messages carry what matters.
Runtime.install({ logger: replayLogger });

const codec = testCodec();

/** Replays one history; resolves with the replay error (undefined when it replayed cleanly). */
async function replay(bundle: WorkflowBundleWithSourceMap, h: Recorded, withCodec = true): Promise<Error | undefined> {
  try {
    await Worker.runReplayHistory(
      { workflowBundle: bundle, replayName: `replay-test-${h.name}`, ...(withCodec ? { dataConverter: codecDataConverter(codec) } : {}) },
      h.history,
      h.workflowId,
    );
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

describe('replay: recorded histories against the current workflow code', () => {
  let bundle: WorkflowBundleWithSourceMap;
  before(async () => {
    bundle = await workflowBundle();
  });

  it('the recorded set is there: a history of every released workflow, each listed in manifest.json', () => {
    assert.ok(histories.length > 0, `no histories in ${HISTORIES}: run \`npm run record-histories\``);
    const types = new Set(histories.map((h) => h.workflowType));
    for (const t of ['readiness', 'failover', 'clusterLock', 'switchover', 'failback', 'rejoin', 'backup', 'drill', 'backupRetention', 'restore', 'guard'])
      assert.ok(types.has(t), `a recorded ${t} history (have: ${[...types].join(', ')})`);
    const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Record<string, unknown>;
    for (const name of Object.keys(manifest))
      assert.ok(existsSync(join(HISTORIES, `${name}.json`)), `manifest.json lists ${name}, but histories/${name}.json is missing`);
    for (const h of histories) assert.ok(h.name in manifest, `histories/${h.name}.json is not in manifest.json (its workflow id)`);
  });

  it('the encrypted histories hold ciphertext only: without the test key they do not replay', async () => {
    const encoding = (h: Recorded) => {
      const p = h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      return p?.metadata?.encoding ? Buffer.from(p.metadata.encoding).toString('utf8') : undefined;
    };
    const encrypted = histories.filter((h) => encoding(h) === ENCRYPTED_ENCODING);
    assert.ok(encrypted.length >= 2, `histories recorded with encryption on (scenario "encrypted"): ${encrypted.map((h) => h.name).join(', ')}`);
    for (const h of encrypted) {
      const err = await replay(bundle, h, false);
      assert.ok(err, `${h.name} replayed without the codec: it is not encrypted`);
      // The workflow task failed on its input: "Unknown encoding: binary/encrypted" (inside the encoded failure).
      const said = `${err.message} ${(err as { cause?: Error }).cause?.message ?? ''}`;
      const encoded = Buffer.from('{"message":"Unknown encodin').toString('base64');
      assert.ok(said.includes('Unknown encoding: binary/encrypted') || said.includes(encoded), `${h.name}: ${err.message}`);
    }
  });

  for (const h of histories) {
    it(`${h.name} (${h.workflowType}) replays without a determinism error`, async () => {
      const err = await replay(bundle, h);
      if (err instanceof DeterminismViolationError) {
        assert.fail(
          `${h.name}: the current ${h.workflowType} code is not compatible with a recorded history. A released workflow is changed with patched()/deprecatePatch() ` +
            `so that runs started before the change replay as they ran; do not re-record this history to make the test pass (test/replay/README.md).\n${err.message}`,
        );
      }
      if (err) assert.fail(`${h.name}: replay failed (${err.name}): ${err.message}`);
    });
  }
});

describe('replay: the check fails on a changed workflow', () => {
  let reordered: WorkflowBundleWithSourceMap;
  before(async () => {
    reordered = await bundleWorkflowCode({ workflowsPath: require.resolve('./fixtures/reordered-failover'), logger: replayLogger });
  });

  const failovers = histories.filter((h) => h.workflowType === 'failover');
  it('has recorded failover histories to check against', () => {
    assert.ok(failovers.length > 0);
  });

  for (const h of failovers) {
    it(`${h.name} is rejected with a DeterminismViolationError when preflight moves before the lock`, async () => {
      const err = await replay(reordered, h);
      assert.ok(err, `${h.name} replayed cleanly against the reordered failover: the replay check cannot see a changed step order`);
      assert.ok(err instanceof DeterminismViolationError, `expected a DeterminismViolationError, got ${err.name}: ${err.message}`);
      assert.ok(!(err instanceof ReplayError));
      assert.match(err.message, /nondeterminism/i);
      if (process.env.SWITCHYARD_TEST_VERBOSE) process.stderr.write(`${h.name}: ${err.message}\n`);
    });
  }

  it('the same bundle replays the workflows it did not change (the rejection is the change, not the bundle)', async () => {
    const untouched = histories.filter((h) => h.workflowType !== 'failover');
    assert.ok(untouched.length > 0);
    for (const h of untouched) {
      const err = await replay(reordered, h);
      assert.equal(err, undefined, `${h.name}: ${err?.name}: ${err?.message}`);
    }
  });
});
