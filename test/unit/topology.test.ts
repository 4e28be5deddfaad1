import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { ConfigError, loadTopology, parseTopology, resolveConfigPath } from '../../src/topology/load';
import { clusterLayout } from '../../src/topology/layout';
import { durationSeconds } from '../../src/topology/schema';

const examplePath = join(__dirname, '../../examples/switchyard.yaml');
const exampleText = readFileSync(examplePath, 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The example with one change applied, run through the loader; returns the error's problems. */
function problems(change: (doc: Obj) => void): { path: string; message: string; line?: number }[] {
  const doc = parse(exampleText) as Obj;
  change(doc);
  try {
    parseTopology(stringify(doc), 'edited.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.file, 'edited.yaml');
    return err.problems;
  }
  assert.fail('the edited topology was accepted');
}

function onlyProblem(change: (doc: Obj) => void) {
  const ps = problems(change);
  assert.equal(ps.length, 1, `expected one problem, got: ${JSON.stringify(ps, null, 2)}`);
  return ps[0];
}

describe('topology: valid input', () => {
  it('loads the example and applies defaults', () => {
    const top = loadTopology(examplePath);
    const c = top.clusters.shop;
    assert.equal(c.preferredPrimary, 'eu1');
    assert.equal(c.hosts['eu1-app'].port, 22, 'ssh port defaults to 22');
    assert.equal(c.postgres.nodes['eu1-db'].port, 5432, 'postgres port defaults to 5432');
    assert.equal(c.ssh.connectTimeoutSeconds, 5);
    assert.deepEqual(c.postgres.password, { env: 'SWITCHYARD_PG_PASSWORD' });
    assert.equal(c.traffic[1].kind, 'command');
    assert.equal(c.checkpoints.onDeadline, 'abort');
  });

  it('reads durations', () => {
    assert.equal(durationSeconds('90s'), 90);
    assert.equal(durationSeconds('15m'), 900);
    assert.equal(durationSeconds('14d'), 14 * 86400);
    assert.throws(() => durationSeconds('soon'), /not a duration/);
  });

  it('finds the file by --config, then SWITCHYARD_CONFIG, then ./switchyard.yaml', () => {
    assert.equal(resolveConfigPath('a.yaml', { SWITCHYARD_CONFIG: '/x/b.yaml' }, '/w'), '/w/a.yaml');
    assert.equal(resolveConfigPath(undefined, { SWITCHYARD_CONFIG: '/x/b.yaml' }, '/w'), '/x/b.yaml');
    assert.equal(resolveConfigPath(undefined, {}, '/w'), '/w/switchyard.yaml');
  });
});

describe('topology: every kind of bad input names file, path and what was expected', () => {
  it('a missing file says how to point at one', () => {
    assert.throws(
      () => loadTopology('/nonexistent/switchyard.yaml'),
      (err: Error) => {
        assert.match(err.message, /\/nonexistent\/switchyard\.yaml/);
        assert.match(err.message, /file not found; pass --config PATH, set SWITCHYARD_CONFIG/);
        return true;
      },
    );
  });

  it('YAML syntax errors carry line and column', () => {
    assert.throws(
      () => parseTopology('version: 1\nclusters:\n  demo: [unclosed\n', 'broken.yaml'),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^invalid topology broken\.yaml:\n  broken\.yaml:\d+:\d+: \(top level\): YAML syntax: /);
        return true;
      },
    );
  });

  it('duplicate keys are refused, not silently merged', () => {
    assert.throws(() => parseTopology('version: 1\nversion: 1\nclusters: {}\n', 'dup.yaml'), /YAML syntax: Map keys must be unique/);
  });

  it('wrong version', () => {
    const p = onlyProblem((d) => (d.version = 2));
    assert.equal(p.path, 'version');
    assert.match(p.message, /expected version: 1/);
  });

  it('a missing required key', () => {
    const p = onlyProblem((d) => delete d.clusters.shop.postgres.user);
    assert.equal(p.path, 'clusters.shop.postgres.user');
    assert.match(p.message, /^missing; expected string/);
  });

  it('a wrong type, with the value that was given', () => {
    const p = onlyProblem((d) => (d.clusters.shop.hosts['eu1-db'].port = 'twenty-two'));
    assert.equal(p.path, 'clusters.shop.hosts.eu1-db.port');
    assert.equal(p.message, 'expected a port number (an integer from 1 to 65535), got "twenty-two"');
  });

  it('a port out of range', () => {
    const p = onlyProblem((d) => (d.clusters.shop.postgres.nodes['eu2-db'].port = 70000));
    assert.equal(p.path, 'clusters.shop.postgres.nodes.eu2-db.port');
    assert.match(p.message, /got 70000$/);
  });

  it('an unknown key (a typo) is named', () => {
    const p = onlyProblem((d) => (d.clusters.shop.postgres.nodes['eu1-db'].sshhost = 'eu1-db'));
    assert.equal(p.path, 'clusters.shop.postgres.nodes.eu1-db');
    assert.equal(p.message, 'unknown key "sshhost"');
  });

  it('an inline secret is refused without echoing it', () => {
    const p = onlyProblem((d) => (d.clusters.shop.postgres.password = 'hunter2-very-secret'));
    assert.equal(p.path, 'clusters.shop.postgres.password');
    assert.match(p.message, /inline secrets are not allowed: write \{ env: VARIABLE \} or \{ file: \/absolute\/path \}/);
    assert.doesNotMatch(JSON.stringify(p), /hunter2/);
  });

  it('a secret reference with both env and file', () => {
    const p = onlyProblem((d) => (d.clusters.shop.ssh.privateKey = { env: 'KEY', file: '/k' }));
    assert.equal(p.path, 'clusters.shop.ssh.privateKey');
    assert.equal(p.message, 'a secret reference names exactly one of "env" or "file"');
  });

  it('temporal: a client certificate without its key, a duplicate codec key id, an unknown encryptWith, an inline codec key', () => {
    const withTemporal = (change: (d: Obj) => void) => (d: Obj) => {
      d.temporal = {
        tls: { serverCa: { file: '/ca.pem' }, clientCert: { file: '/c.pem' }, clientKey: { file: '/k.pem' } },
        codec: { keys: [{ id: 'key-1', key: { file: '/codec-1' } }] },
      };
      d.metrics = { listen: '0.0.0.0:9464' };
      change(d);
    };
    const valid = parse(exampleText) as Obj;
    withTemporal(() => undefined)(valid);
    assert.equal(parseTopology(stringify(valid), 'edited.yaml').temporal?.codec?.keys[0].id, 'key-1', 'the section itself is valid');
    let p = onlyProblem(withTemporal((d) => delete d.temporal.tls.clientKey));
    assert.equal(p.path, 'temporal.tls.clientKey');
    assert.match(p.message, /clientCert and temporal\.tls\.clientKey go together/);
    p = onlyProblem(withTemporal((d) => d.temporal.codec.keys.push({ id: 'key-1', key: { file: '/k2' } })));
    assert.equal(p.path, 'temporal.codec.keys[1].id');
    assert.equal(p.message, 'key id "key-1" appears twice');
    p = onlyProblem(withTemporal((d) => (d.temporal.codec.encryptWith = 'key-9')));
    assert.equal(p.path, 'temporal.codec.encryptWith');
    assert.equal(p.message, 'no key with id "key-9" (the keys are "key-1")');
    p = onlyProblem(withTemporal((d) => (d.temporal.codec.keys[0].key = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff')));
    assert.equal(p.path, 'temporal.codec.keys[0].key');
    assert.match(p.message, /inline secrets are not allowed/);
    assert.doesNotMatch(JSON.stringify(p), /00112233/);
    p = onlyProblem(withTemporal((d) => (d.metrics.listen = '9464')));
    assert.equal(p.path, 'metrics.listen');
  });

  it('a relative path', () => {
    const p = onlyProblem((d) => (d.clusters.shop.postgres.nodes['eu1-db'].dataDir = 'var/lib/pg'));
    assert.equal(p.path, 'clusters.shop.postgres.nodes.eu1-db.dataDir');
    assert.equal(p.message, 'expected an absolute path (starting with "/"), got "var/lib/pg"');
  });

  it('a host key that is not an OpenSSH public key', () => {
    const p = onlyProblem((d) => (d.clusters.shop.hosts['eu2-app'].hostKey = 'SHA256:abcdef'));
    assert.equal(p.path, 'clusters.shop.hosts.eu2-app.hostKey');
    assert.match(p.message, /expected the host public key in OpenSSH format/);
  });

  it('a command given as a string instead of an argument list', () => {
    const p = onlyProblem((d) => (d.clusters.shop.sites.eu1.services['fault-detection'].start = 'systemctl start fd'));
    assert.equal(p.path, 'clusters.shop.sites.eu1.services.fault-detection.start');
    assert.match(p.message, /expected a command as a list of arguments/);
  });

  it('a bad duration', () => {
    const p = onlyProblem((d) => (d.clusters.shop.checkpoints.deadline = 'soon'));
    assert.equal(p.path, 'clusters.shop.checkpoints.deadline');
    assert.match(p.message, /expected a duration such as "90s", "15m", "6h" or "14d", got "soon"/);
  });

  it('an unknown traffic driver kind', () => {
    const p = onlyProblem((d) => (d.clusters.shop.traffic[0] = { kind: 'carrier-pigeon', name: 'x' }));
    assert.equal(p.path, 'clusters.shop.traffic[0].kind');
    assert.match(p.message, /kind/);
  });

  it('a name with upper case or spaces', () => {
    const p = onlyProblem((d) => {
      d.clusters['My Shop'] = d.clusters.shop;
      delete d.clusters.shop;
    });
    assert.equal(p.path, 'clusters.My Shop');
    assert.match(p.message, /expected a name of lowercase letters/);
  });

  it('a reference to a site that does not exist lists the known ones', () => {
    const p = onlyProblem((d) => (d.clusters.shop.preferredPrimary = 'us1'));
    assert.equal(p.path, 'clusters.shop.preferredPrimary');
    assert.equal(p.message, 'unknown site "us1"; known: "eu1", "eu2"');
  });

  it('a reference to a host that does not exist', () => {
    const p = onlyProblem((d) => (d.clusters.shop.postgres.nodes['eu2-db'].sshHost = 'eu9-db'));
    assert.equal(p.path, 'clusters.shop.postgres.nodes.eu2-db.sshHost');
    assert.match(p.message, /^unknown host "eu9-db"; known: "eu1-db", "eu1-app", "eu2-db", "eu2-app"$/);
  });

  it('a site with two database nodes and one with none', () => {
    const ps = problems((d) => (d.clusters.shop.postgres.nodes['eu2-db'].site = 'eu1'));
    assert.deepEqual(ps.map((p) => p.message).sort(), [
      'site "eu1" needs exactly one database node, found 2 (eu1-db, eu2-db)',
      'site "eu2" needs exactly one database node, found 0',
    ]);
  });

  it('an Elastic IP driver without an EC2 section', () => {
    const ps = problems((d) => {
      delete d.clusters.shop.ec2;
      for (const n of Object.values(d.clusters.shop.postgres.nodes) as Obj[]) delete n.ec2;
      d.clusters.shop.backup.kinds = ['pg'];
    });
    assert.deepEqual(
      ps.map((p) => `${p.path}: ${p.message}`),
      [
        'clusters.shop.traffic[0]: the elastic-ip driver "public" needs the cluster\'s "ec2" section (region, endpoint)',
        'clusters.shop.postgres.nodes.eu1-db.ec2: the elastic-ip driver "public" needs an EC2 selector on every database node',
        'clusters.shop.postgres.nodes.eu2-db.ec2: the elastic-ip driver "public" needs an EC2 selector on every database node',
      ],
    );
  });

  it('EBS snapshot backups without an EC2 section, and a backup host that is not a host', () => {
    const ps = problems((d) => {
      delete d.clusters.shop.ec2;
      d.clusters.shop.traffic = d.clusters.shop.traffic.filter((t: Obj) => t.kind !== 'elastic-ip' && t.kind !== 'private-ip');
      for (const n of Object.values(d.clusters.shop.postgres.nodes) as Obj[]) delete n.ec2;
      d.clusters.shop.backup.host = 'tape-robot';
    });
    assert.deepEqual(
      ps.map((p) => `${p.path}: ${p.message}`),
      [
        'clusters.shop.backup.host: unknown host "tape-robot"; known: "eu1-db", "eu1-app", "eu2-db", "eu2-app"',
        'clusters.shop.backup.kinds: EBS snapshot backups need the cluster\'s "ec2" section (region, endpoint)',
        'clusters.shop.postgres.nodes.eu1-db.ec2: EBS snapshot backups need an EC2 selector on every database node',
        'clusters.shop.postgres.nodes.eu2-db.ec2: EBS snapshot backups need an EC2 selector on every database node',
      ],
    );
  });

  it('EBS copies: each region with its own retention; the layout has maxAge in seconds', () => {
    const doc = parse(exampleText) as Obj;
    doc.clusters.shop.backup.ebs = {
      copyTo: [
        { region: 'eu-central-1', keepLast: 3, maxAge: '30d', kmsKeyId: 'alias/backups' },
        { region: 'us-east-1', keepLast: 1, maxAge: '2d' },
      ],
    };
    const top = parseTopology(stringify(doc), 'edited.yaml');
    assert.deepEqual(clusterLayout('shop', top.clusters.shop, top).backup?.ebs, {
      copyTo: [
        { region: 'eu-central-1', keepLast: 3, maxAgeSeconds: 30 * 86400, kmsKeyId: 'alias/backups' },
        { region: 'us-east-1', keepLast: 1, maxAgeSeconds: 2 * 86400 },
      ],
    });
    assert.equal(clusterLayout('shop', loadTopology(examplePath).clusters.shop).backup?.ebs, undefined, 'no "ebs" section: no copies');
  });

  it('EBS copies: a bad region, count, duration or field, the own region, a region twice, no regions', () => {
    const copy = (over: Obj) => (d: Obj) => (d.clusters.shop.backup.ebs = { copyTo: [{ region: 'eu-central-1', keepLast: 3, maxAge: '30d', ...over }] });
    const at = (p: { path: string; message: string }) => `${p.path}: ${p.message}`;
    assert.equal(
      at(onlyProblem(copy({ region: 'Frankfurt' }))),
      'clusters.shop.backup.ebs.copyTo[0].region: expected an AWS region such as "eu-west-1", got "Frankfurt"',
    );
    assert.equal(at(onlyProblem(copy({ keepLast: 0 }))), 'clusters.shop.backup.ebs.copyTo[0].keepLast: expected a positive integer, got 0');
    assert.equal(
      at(onlyProblem(copy({ maxAge: 'a month' }))),
      'clusters.shop.backup.ebs.copyTo[0].maxAge: expected a duration such as "90s", "15m", "6h" or "14d", got "a month"',
    );
    assert.equal(at(onlyProblem(copy({ kmsKeyId: '' }))), 'clusters.shop.backup.ebs.copyTo[0].kmsKeyId: expected a KMS key id, alias or ARN, got ""');
    assert.equal(at(onlyProblem(copy({ keepLst: 2 }))), 'clusters.shop.backup.ebs.copyTo[0]: unknown key "keepLst"');
    assert.equal(
      at(onlyProblem(copy({ region: 'eu-west-1' }))),
      "clusters.shop.backup.ebs.copyTo[0].region: eu-west-1 is the cluster's own ec2.region: the snapshots are already there; copy to another region",
    );
    assert.equal(
      at(
        onlyProblem(
          (d) =>
            (d.clusters.shop.backup.ebs = {
              copyTo: [
                { region: 'eu-central-1', keepLast: 3, maxAge: '30d' },
                { region: 'eu-central-1', keepLast: 1, maxAge: '1d' },
              ],
            }),
        ),
      ),
      'clusters.shop.backup.ebs.copyTo[1].region: eu-central-1 is listed twice in backup.ebs.copyTo',
    );
    assert.equal(
      at(onlyProblem((d) => (d.clusters.shop.backup.ebs = { copyTo: [] }))),
      'clusters.shop.backup.ebs.copyTo: expected at least one region to copy to (leave "ebs" out for no copies)',
    );
  });

  it('two traffic drivers with one name', () => {
    const p = onlyProblem((d) => (d.clusters.shop.traffic[1].name = 'public'));
    assert.equal(p.path, 'clusters.shop.traffic[1].name');
    assert.equal(p.message, 'traffic driver name "public" is used twice');
  });

  it('points at the line of the offending value', () => {
    const text = exampleText.replace('eu2-db:  { site: eu2, address: 10.2.0.10,', 'eu2-db:  { site: eu2, address: "10.2.0.10 rm -rf",');
    const line = text.split('\n').findIndex((l) => l.includes('10.2.0.10 rm -rf')) + 1;
    assert.throws(
      () => parseTopology(text, 'lines.yaml'),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems[0].line, line);
        assert.match(err.message, new RegExp(`lines\\.yaml:${line}:\\d+: clusters\\.shop\\.hosts\\.eu2-db\\.address: expected a host name or IP address`));
        return true;
      },
    );
  });

  it('reports every problem at once, not only the first', () => {
    const ps = problems((d) => {
      d.clusters.shop.hosts['eu1-db'].port = 0;
      d.clusters.shop.checkpoints.twoPerson = 'yes';
    });
    assert.deepEqual(ps.map((p) => p.path).sort(), ['clusters.shop.checkpoints.twoPerson', 'clusters.shop.hosts.eu1-db.port']);
  });
});

describe('topology: JSON Schema for editors', () => {
  it('schema/topology.schema.json is the one generated from the zod schema (run npm run schema)', async () => {
    const { jsonSchema } = await import('../../src/topology/json-schema');
    const committed = JSON.parse(readFileSync(join(__dirname, '../../schema/topology.schema.json'), 'utf8'));
    assert.deepEqual(committed, jsonSchema());
  });

  it('describes the shape: required keys and the secret-reference form', async () => {
    const { jsonSchema } = await import('../../src/topology/json-schema');
    const s = JSON.stringify(jsonSchema());
    for (const key of ['preferredPrimary', 'hostKey', 'dataDir', 'privateKey', 'elastic-ip', 'haproxy'])
      assert.ok(s.includes(`"${key}"`), `schema mentions ${key}`);
  });
});
