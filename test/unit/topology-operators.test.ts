/**
 * Operators, the console and checkpoint policies in the topology: what is refused (with the path
 * and why), what a workflow's layout gets (names resolved, keys), password hashes, and editing the
 * topology file without touching anything but the sections changed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashPassword, verifyPassword } from '../../src/client/passwords';
import { generateSigningKey, parseSigningKey, publicKeyHex } from '../../src/client/signing';
import { editedText } from '../../src/client/topology-edit';
import { clusterLayout } from '../../src/topology/layout';
import { parseTopology } from '../../src/topology/load';
import { topologySchema } from '../../src/topology/schema';
import { buildTopology, topologyInput } from '../support/topology';

const KEY = 'ab'.repeat(32);
const operators = { alice: { groups: ['dba'] }, bob: { groups: ['dba', 'oncall'] }, carol: { publicKey: KEY } };

function issues(...args: Parameters<typeof topologyInput>): string[] {
  const r = topologySchema.safeParse(topologyInput(...args));
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('topology: operators, console and checkpoint policy', () => {
  it('resolves approvers and groups, per-checkpoint rules and keys into the layout', () => {
    const top = buildTopology(
      { checkpoints: { approvers: ['@dba', 'Carol'], twoPerson: true, approvals: { 'old-primary-dead': { approvals: 2, approvers: ['@oncall', 'alice'] } } } },
      { operators, console: { url: 'https://console.example/', publicKey: KEY.replace(/a/g, 'c'), signingKey: { env: 'K' } } },
    );
    const cp = clusterLayout('main', top.clusters.main, top).checkpoints;
    assert.deepEqual(cp.approvers, ['alice', 'bob', 'carol']);
    assert.deepEqual(cp.approvals, { 'old-primary-dead': { approvals: 2, approvers: ['bob', 'alice'] } });
    assert.deepEqual(cp.keys, { console: KEY.replace(/a/g, 'c'), 'operator:carol': KEY });
    assert.equal(cp.consoleUrl, 'https://console.example');
    assert.equal(cp.verifiedDecisions, 'optional');
    // no secret reference in the layout: it lands in workflow history
    assert.doesNotMatch(JSON.stringify(cp), /"env"|signingKey/);
  });

  it('refuses unknown groups, impossible counts, unknown checkpoints, required signatures with nothing to verify, and non-operators under required', () => {
    assert.deepEqual(issues({ checkpoints: { approvers: ['@sre'] } }, { operators }), [
      'clusters.main.checkpoints.approvers.0: no operator is in group "sre"; groups: "dba", "oncall"',
    ]);
    assert.deepEqual(issues({ checkpoints: { approvers: ['@dba'], approvals: { 'old-primary-dead': { approvals: 3 } } } }, { operators }), [
      'clusters.main.checkpoints.approvals.old-primary-dead.approvals: 3 approvals needed but only 2 operators may approve "old-primary-dead"',
    ]);
    assert.match(
      issues({ checkpoints: { approvals: { 'old-primary-ded': {} } } }, { operators })[0],
      /approvals\.old-primary-ded: unknown checkpoint "old-primary-ded"; checkpoints: "old-primary-dead"/,
    );
    assert.deepEqual(issues({ checkpoints: { verifiedDecisions: 'required' } }, { operators: { alice: {} } }), [
      "clusters.main.checkpoints.verifiedDecisions: verified decisions need a key to verify them with: console.publicKey (the console signs) or an operator's publicKey (`switchyard approve --key`)",
    ]);
    assert.match(
      issues({ checkpoints: { verifiedDecisions: 'required', approvers: ['alice', 'dave'] } }, { operators })[0],
      /approvers\.1: "dave" is not an operator/,
    );
    // without the required policy a free name still decides (unverified), as before operators existed
    assert.deepEqual(issues({ checkpoints: { approvers: ['alice', 'dave'] } }, { operators }), []);
  });

  it('refuses a password where its hash belongs, a malformed key, and a console key without its public half', () => {
    assert.match(
      issues({}, { operators: { alice: { password: 'hunter2hunter2' } } })[0],
      /operators\.alice\.password: expected a password hash written by `switchyard operator add`/,
    );
    assert.match(issues({}, { operators: { alice: { publicKey: 'xyz' } } })[0], /operators\.alice\.publicKey: expected an Ed25519 public key/);
    assert.match(issues({}, { console: { signingKey: { file: '/k' } } })[0], /console\.publicKey: console\.signingKey and console\.publicKey go together/);
    assert.match(issues({}, { console: { signingKey: 'inline' as never, publicKey: KEY } })[0], /console\.signingKey: inline secrets are not allowed/);
  });

  it('password hashes verify only the password, and a name without one never matches', async () => {
    const h = await hashPassword('correct horse battery');
    assert.match(h, /^scrypt\$32768\$8\$1\$/);
    assert.equal(await verifyPassword('correct horse battery', h), true);
    assert.equal(await verifyPassword('correct horse batterY', h), false);
    assert.equal(await verifyPassword('correct horse battery', undefined), false);
    assert.equal(await verifyPassword('x', 'scrypt$3$8$1$AAAA$AAAA'), false);
    await assert.rejects(hashPassword('short'), /at least 12 characters/);
  });

  it('signing keys read from PEM or a hex seed, and name what is wrong without quoting it', () => {
    const k = generateSigningKey();
    assert.equal(publicKeyHex(parseSigningKey(k.privatePem, 'f')), k.publicKey);
    assert.equal(publicKeyHex(parseSigningKey('11'.repeat(32), 'f')).length, 64);
    assert.throws(
      () => parseSigningKey('secret-ish garbage', 'console.key'),
      (e: Error) => e.message.startsWith('console.key: not an Ed25519') && !e.message.includes('garbage'),
    );
  });

  it('editing the topology rewrites only the sections changed: every other byte and comment stays', () => {
    const text = readFileSync(join(__dirname, '../../examples/switchyard.yaml'), 'utf8');
    const once = editedText(text, [[['operators', 'alice', 'groups'], ['dba']]]);
    assert.ok(once.startsWith(text), 'the file before the new section is unchanged');
    const twice = editedText(once, [
      [['operators', 'bob', 'groups'], ['dba']],
      [['console', 'publicKey'], KEY],
      [['console', 'signingKey'], { file: '/etc/switchyard/console.key' }],
    ]);
    assert.ok(twice.startsWith(text));
    const top = parseTopology(twice, 'edited');
    assert.deepEqual(Object.keys(top.operators), ['alice', 'bob']);
    assert.equal(top.console?.publicKey, KEY);
    // a section in the middle of the file is replaced in place, what follows it kept
    const middle = `version: 1\noperators: # who decides\n  alice: {}\n# the clusters\n${text.slice(text.indexOf('clusters:'))}`;
    const edited = editedText(middle, [[['operators', 'bob'], {}]]);
    assert.ok(edited.includes('# the clusters\n'), edited.slice(0, 200));
    assert.deepEqual(Object.keys(parseTopology(edited, 'm').operators), ['alice', 'bob']);
  });
});
