/**
 * Traffic pieces that need no daemon: HAProxy's answer format (captured from HAProxy 2.6), the
 * admin-state rule, refusing command injection into the runtime API, and the command driver over
 * a fake SSH session that keeps the "where traffic points" state.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { utils } from 'ssh2';
import { createActivities, type SshConnectConfig, type SshSessionLike } from '../../src/activities';
import { haproxyCommand, parseServersState, takesTraffic } from '../../src/activities/traffic';
import { topologySchema, type Topology } from '../../src/topology/schema';

/** `show servers state pg` from HAProxy 2.6 with pg-dc2 written "disabled" in the config. */
const SHOW_SERVERS_STATE =
  '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n' +
  '3 pg 1 pg-dc1 127.0.93.9 2 0 1 1 1 1 0 2 0 0 0 0 - 19001 - 0 0 - - 0\n' +
  '3 pg 2 pg-dc2 127.0.93.9 0 5 1 1 1 1 0 0 8 0 0 0 - 19002 - 0 0 - - 0\n\n';

describe('HAProxy runtime API', () => {
  it('parses show servers state by its header', () => {
    assert.deepEqual(parseServersState(SHOW_SERVERS_STATE), [
      { name: 'pg-dc1', address: '127.0.93.9', port: 19001, opState: 2, adminState: 0 },
      { name: 'pg-dc2', address: '127.0.93.9', port: 19002, opState: 0, adminState: 5 },
    ]);
  });

  it('throws on an answer that is not a server list (unknown backend)', () => {
    assert.throws(() => parseServersState("Can't find backend.\n\n"), /unexpected answer to "show servers state": "Can't find backend\."/);
  });

  it('a server is in rotation unless a maintenance or drain bit is set (CMAINT and HMAINT are history)', () => {
    const s = (adminState: number) => ({ name: 'x', address: 'a', port: 1, opState: 2, adminState });
    assert.deepEqual([0, 0x04, 0x40, 0x44].map((a) => takesTraffic(s(a))), [true, true, true, true]);
    assert.deepEqual([0x01, 0x02, 0x05, 0x08, 0x10, 0x20].map((a) => takesTraffic(s(a))), [false, false, false, false, false, false]);
  });

  it('sends one command per connection and refuses anything that could smuggle a second one', async () => {
    const got: string[] = [];
    const srv = createServer((sock) => {
      sock.on('data', (d) => {
        got.push(d.toString('utf8'));
        sock.end('\n');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      assert.equal(await haproxyCommand('127.0.0.1', port, 'set server pg/a state ready', 1000), '\n');
      assert.deepEqual(got, ['set server pg/a state ready\n']);
      for (const bad of ['show info; shutdown frontend f', 'show info\nshutdown frontend f', 'x\r'])
        await assert.rejects(haproxyCommand('127.0.0.1', port, bad, 1000), /one HAProxy command per connection/);
      assert.equal(got.length, 1);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('times out on a runtime API that never answers', async () => {
    const held = new Set<Socket>();
    const srv = createServer((sock) => held.add(sock)); // accepts, never reads, never answers
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      await assert.rejects(haproxyCommand('127.0.0.1', port, 'show info', 200), /did not answer "show …" within 200 ms/);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => srv.close(r));
    }
  });
});

describe('command driver (fake SSH host)', () => {
  const keys = utils.generateKeyPairSync('ed25519');
  const hostKeys = utils.generateKeyPairSync('ed25519');

  function topology(): Topology {
    return topologySchema.parse({
      version: 1,
      clusters: {
        main: {
          preferredPrimary: 'dc1',
          sites: { dc1: {}, dc2: {} },
          hosts: { lb: { site: 'dc1', address: '127.0.0.1', hostKey: hostKeys.public }, h2: { site: 'dc2', address: '127.0.0.1', hostKey: hostKeys.public } },
          ssh: { user: 'ops', privateKey: { env: 'KEY' } },
          postgres: {
            user: 'u',
            replication: { user: 'u' },
            nodes: {
              a: { site: 'dc1', sshHost: 'lb', host: '10.1.0.5', port: 5432, dataDir: '/d', binDir: '/b', slot: 'a' },
              b: { site: 'dc2', sshHost: 'h2', host: '10.2.0.5', port: 6432, dataDir: '/d', binDir: '/b', slot: 'b' },
            },
          },
          traffic: [{ kind: 'command', name: 'dns', host: 'lb', move: ['set-dns', '--to={site}', '{address}:{port}', "note: it's $(not run) {site}"], read: ['get-dns'] }],
        },
      },
    });
  }

  /**
   * A host whose "DNS" is one variable: get-dns prints it, set-dns sets it from its --to
   * argument. Commands are parsed back with a real sh, so quoting is exercised for real.
   */
  function fakeHost(opts: { moveWorks: boolean }) {
    const state = { points: 'dc1', lines: [] as string[], lastSetArgv: [] as string[] };
    const ssh = async (cfg: SshConnectConfig): Promise<SshSessionLike> => {
      assert.equal(cfg.hostVerifier(Buffer.from(hostKeys.public.split(' ')[1], 'base64')), true);
      return {
        async exec(command) {
          state.lines.push(command);
          const argv = JSON.parse(execFileSync('sh', ['-c', `node -e 'process.stdout.write(JSON.stringify(process.argv.slice(1)))' ${command}`], { encoding: 'utf8' })) as string[];
          if (argv[0] === 'get-dns') return { code: 0, signal: null, stdout: `${state.points}\n`, stderr: '', timedOut: false };
          state.lastSetArgv = argv;
          if (argv[0] === 'set-dns') {
            if (opts.moveWorks) state.points = argv[1].replace('--to=', '');
            return { code: 0, signal: null, stdout: '', stderr: '', timedOut: false };
          }
          return { code: 127, signal: null, stdout: '', stderr: `${argv[0]}: not found`, timedOut: false };
        },
        close() {},
      };
    };
    return { state, ssh };
  }

  it('moves, with placeholders substituted and quoted, and reads the move back', async () => {
    const host = fakeHost({ moveWorks: true });
    const act = createActivities({ topology, secret: async () => keys.private, ssh: host.ssh });
    const r = await act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc2' });
    assert.deepEqual([r.site, r.changed], ['dc2', true]);
    assert.equal(host.state.points, 'dc2');
    assert.ok(host.state.lines.includes(`set-dns --to=dc2 10.2.0.5:6432 'note: it'\\''s $(not run) dc2'`), host.state.lines.join('\n'));
    assert.deepEqual(host.state.lastSetArgv, ['set-dns', '--to=dc2', '10.2.0.5:6432', "note: it's $(not run) dc2"]);
  });

  it('is a no-op when traffic already points there', async () => {
    const host = fakeHost({ moveWorks: true });
    const act = createActivities({ topology, secret: async () => keys.private, ssh: host.ssh });
    const r = await act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc1' });
    assert.deepEqual([r.site, r.changed], ['dc1', false]);
    assert.deepEqual(host.state.lines, ['get-dns']);
  });

  it('throws when the read-back disagrees with the move', async () => {
    const host = fakeHost({ moveWorks: false });
    const act = createActivities({ topology, secret: async () => keys.private, ssh: host.ssh });
    await assert.rejects(act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc2' }), /traffic driver "dns" still does not point at site "dc2" after the move/);
    assert.equal(host.state.points, 'dc1');
  });

  it('refuses a site that does not exist before touching anything', async () => {
    const host = fakeHost({ moveWorks: true });
    const act = createActivities({ topology, secret: async () => keys.private, ssh: host.ssh });
    await assert.rejects(act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc3' }), { type: 'ConfigError', message: 'unknown site "dc3" in cluster "main"; known: "dc1", "dc2"' });
    assert.deepEqual(host.state.lines, []);
  });
});
