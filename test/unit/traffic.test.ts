/**
 * Traffic pieces that need no daemon: HAProxy's answer format (captured from HAProxy 2.6), the
 * admin-state rule, refusing command injection into the runtime API, and the command driver over
 * a fake SSH session that keeps the "where traffic points" state.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ed25519KeyPair } from '../support/ssh-keys';
import { createActivities } from '../../src/activities';
import { WRITE_SH } from '../../src/activities/ssh/files';
import { commandLine } from '../../src/activities/ssh/quote';
import { haproxyCommand, NO_STATE_FILE, parseServersState, takesTraffic } from '../../src/activities/traffic/haproxy';
import { topologySchema, type Topology } from '../../src/topology/schema';
import { fakeSsh } from '../support/fake-ssh';
import { buildTopology } from '../support/topology';

/** `show servers state pg` from HAProxy 2.6 with pg-dc2 written "disabled" in the config. */
const SHOW_SERVERS_STATE =
  '1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status ' +
  'srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl ' +
  'srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n' +
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
    assert.deepEqual(
      [0, 0x04, 0x40, 0x44].map((a) => takesTraffic(s(a))),
      [true, true, true, true],
    );
    assert.deepEqual(
      [0x01, 0x02, 0x05, 0x08, 0x10, 0x20].map((a) => takesTraffic(s(a))),
      [false, false, false, false, false, false],
    );
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
  const keys = ed25519KeyPair();
  const hostKeys = ed25519KeyPair();

  function topology(): Topology {
    return buildTopology({
      hosts: { lb: { site: 'dc1', address: '127.0.0.1', hostKey: hostKeys.public }, h2: { site: 'dc2', address: '127.0.0.1', hostKey: hostKeys.public } },
      postgres: {
        nodes: {
          a: { site: 'dc1', sshHost: 'lb', host: '10.1.0.5', port: 5432, dataDir: '/d', binDir: '/b', slot: 'a' },
          b: { site: 'dc2', sshHost: 'h2', host: '10.2.0.5', port: 6432, dataDir: '/d', binDir: '/b', slot: 'b' },
        },
      },
      traffic: [
        {
          kind: 'command',
          name: 'dns',
          host: 'lb',
          move: ['set-dns', '--to={site}', '{address}:{port}', "note: it's $(not run) {site}"],
          read: ['get-dns'],
        },
      ],
    });
  }

  /**
   * A host whose "DNS" is one variable: get-dns prints it, set-dns sets it from its --to
   * argument. Commands are parsed back with a real sh, so quoting is exercised for real.
   */
  function fakeHost(opts: { moveWorks: boolean }) {
    const { ssh, log } = fakeSsh({
      presents: hostKeys.public,
      run: (command) => {
        const argv = JSON.parse(
          execFileSync('sh', ['-c', `node -e 'process.stdout.write(JSON.stringify(process.argv.slice(1)))' ${command}`], { encoding: 'utf8' }),
        ) as string[];
        if (argv[0] === 'get-dns') return { code: 0, stdout: `${state.points}\n` };
        state.lastSetArgv = argv;
        if (argv[0] === 'set-dns') {
          if (opts.moveWorks) state.points = argv[1].replace('--to=', '');
          return { code: 0 };
        }
        return { code: 127, stderr: `${argv[0]}: not found` };
      },
    });
    const state = { points: 'dc1', lines: log.lines, lastSetArgv: [] as string[] };
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
    await assert.rejects(
      act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc2' }),
      /traffic driver "dns" still does not point at site "dc2" after the move/,
    );
    assert.equal(host.state.points, 'dc1');
  });

  it('refuses a site that does not exist before touching anything', async () => {
    const host = fakeHost({ moveWorks: true });
    const act = createActivities({ topology, secret: async () => keys.private, ssh: host.ssh });
    await assert.rejects(act.trafficMove({ cluster: 'main', driver: 'dns', site: 'dc3' }), {
      type: 'ConfigError',
      message: 'unknown site "dc3" in cluster "main"; known: "dc1", "dc2"',
    });
    assert.deepEqual(host.state.lines, []);
  });
});

describe("haproxy driver: order of commands and the saved state (fake runtime API, state file written by this machine's sh)", () => {
  const keys = ed25519KeyPair();
  const hostKeys = ed25519KeyPair();
  const FMAINT = 0x01;
  const DRAIN = 0x08 | 0x10;

  /**
   * A runtime API keeping two servers' admin states: it answers `show servers state` from them,
   * applies `set server … state ready|maint`, and after every command records how many servers
   * of backend pg take new connections. One command per connection, as HAProxy does.
   */
  async function fakeRuntimeApi(initial: Record<string, number>) {
    const admin = { ...initial };
    const commands: string[] = [];
    const readyAfter: number[] = [];
    const header = SHOW_SERVERS_STATE.split('\n')[1];
    const line = (be: string, id: number, name: string, adm: number) =>
      `3 ${be} ${id} ${name} 127.0.93.9 2 ${adm} 1 1 1 1 0 2 0 0 0 0 - ${19000 + id} - 0 0 - - 0`;
    const state = (all: boolean) =>
      `1\n${header}\n${Object.entries(admin)
        .map(([n, a], i) => line('pg', i + 1, n, a))
        .join('\n')}\n${all ? `${line('other', 9, 'o1', 1)}\n` : ''}\n`;
    const answer = (cmd: string): string => {
      if (cmd === 'show servers state pg') return state(false);
      if (cmd === 'show servers state') return state(true);
      let m = /^set server pg\/(\S+) state (ready|maint)$/.exec(cmd);
      if (m && m[1] in admin) {
        admin[m[1]] = m[2] === 'ready' ? admin[m[1]] & ~(FMAINT | DRAIN) : admin[m[1]] | FMAINT;
        return '';
      }
      m = /^shutdown sessions server pg\/(\S+)$/.exec(cmd);
      if (m && m[1] in admin) return '';
      return 'Unknown command.\n';
    };
    const srv = createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        if (!buf.includes('\n')) return;
        const cmd = buf.trim();
        commands.push(cmd);
        const a = answer(cmd);
        readyAfter.push(Object.values(admin).filter((x) => (x & (0x23 | 0x18)) === 0).length);
        sock.end(a);
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return {
      admin,
      commands,
      readyAfter,
      fullState: () => state(true),
      port: (srv.address() as { port: number }).port,
      close: () => new Promise((r) => srv.close(r)),
    };
  }

  /** An SSH host that runs each command with this machine's sh, as sshd would; `fail` answers instead. */
  function shHost(fail?: { code: number; stderr: string }) {
    const { ssh, log } = fakeSsh({
      presents: hostKeys.public,
      run: (command) => {
        if (fail) return fail;
        try {
          return { code: 0, stdout: execFileSync('sh', ['-c', command], { encoding: 'utf8' }) };
        } catch (err) {
          const e = err as { status: number | null; stdout: string; stderr: string };
          return { code: e.status, stdout: String(e.stdout ?? ''), stderr: String(e.stderr ?? '') };
        }
      },
    });
    return { lines: log.lines, ssh };
  }

  function top(adminPort: number, stateFile: string | null): Topology {
    return buildTopology({
      hosts: {
        lb: { address: '127.0.0.1', hostKey: hostKeys.public },
        h1: { site: 'dc1', address: '127.0.0.1', hostKey: hostKeys.public },
        h2: { site: 'dc2', address: '127.0.0.1', hostKey: hostKeys.public },
      },
      postgres: {
        nodes: {
          a: { site: 'dc1', sshHost: 'h1', host: '10.1.0.5', dataDir: '/d', binDir: '/b', slot: 'a' },
          b: { site: 'dc2', sshHost: 'h2', host: '10.2.0.5', dataDir: '/d', binDir: '/b', slot: 'b' },
        },
      },
      traffic: [
        {
          kind: 'haproxy',
          name: 'front',
          admin: { address: '127.0.0.1', port: adminPort },
          backend: 'pg',
          servers: { dc1: 'pg-dc1', dc2: 'pg-dc2' },
          listen: { address: '127.0.0.1', port: 1 },
          ...(stateFile ? { stateFile: { host: 'lb', path: stateFile } } : {}),
        },
      ],
    });
  }

  const tmp = () => mkdtempSync(join(tmpdir(), 'switchyard-test-hapstate-'));

  it("puts the old server in maint before the new one is ready (never two ready), shuts its sessions, then saves all backends' state atomically", async () => {
    const api = await fakeRuntimeApi({ 'pg-dc1': 0, 'pg-dc2': 5 });
    const dir = tmp();
    const file = join(dir, 'servers.state');
    try {
      writeFileSync(file, 'the state before\n');
      const inodeBefore = statSync(file).ino;
      const host = shHost();
      const act = createActivities({ topology: () => top(api.port, file), secret: async () => keys.private, ssh: host.ssh });
      const r = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' });
      assert.deepEqual([r.site, r.changed], ['dc2', true]);
      assert.deepEqual(api.commands, [
        'show servers state pg', // read before
        'show servers state pg', // the server list the move works on
        'set server pg/pg-dc1 state maint',
        'set server pg/pg-dc2 state ready',
        'shutdown sessions server pg/pg-dc1',
        'show servers state pg', // read back
        'show servers state', // every backend, for the state file
      ]);
      assert.ok(Math.max(...api.readyAfter) <= 1, `servers ready after each command: ${api.readyAfter.join(', ')}`);
      assert.match(r.detail, new RegExp(`pg-dc1 maint, pg-dc2 ready, sessions on pg-dc1 shut \\(was dc1\\); state saved to ${file} on lb`));
      // One command over SSH: the fixed write script, the path and the content as arguments.
      const content = api.fullState();
      assert.deepEqual(host.lines, [
        commandLine(['sh', '-c', WRITE_SH, 'sh', file, Buffer.from(content).toString('base64'), 'first', 'last', '644', '', 'mkdir']),
      ]);
      // What HAProxy will load: the whole answer, other backends included, replaced by a rename.
      assert.equal(readFileSync(file, 'utf8'), content);
      assert.match(content, / other 9 o1 /);
      assert.notEqual(statSync(file).ino, inodeBefore, 'a new file renamed over the old one, not the old one rewritten');
      assert.equal(statSync(file).mode & 0o777, 0o644);
      assert.deepEqual(readdirSync(dir), ['servers.state'], 'no temp file left');
    } finally {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('already pointing there (a retry after maint, before the sessions were shut): still shuts them and saves the state', async () => {
    const api = await fakeRuntimeApi({ 'pg-dc1': 1, 'pg-dc2': 4 });
    const dir = tmp();
    const file = join(dir, 'servers.state');
    try {
      const act = createActivities({ topology: () => top(api.port, file), secret: async () => keys.private, ssh: shHost().ssh });
      const r = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' });
      assert.deepEqual([r.site, r.changed], ['dc2', false]);
      assert.ok(api.commands.includes('shutdown sessions server pg/pg-dc1'), api.commands.join('\n'));
      assert.ok(!api.commands.includes('shutdown sessions server pg/pg-dc2'), 'the target keeps its sessions');
      assert.ok(Math.max(...api.readyAfter) <= 1);
      assert.match(r.detail, /^already points at dc2; kept: pg-dc1 maint, pg-dc2 ready, sessions on pg-dc1 shut; state saved to /);
      assert.equal(readFileSync(file, 'utf8'), api.fullState());
    } finally {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a state file that cannot be written fails the move, retryably, naming the file and the host', async () => {
    const api = await fakeRuntimeApi({ 'pg-dc1': 0, 'pg-dc2': 5 });
    try {
      const act = createActivities({
        topology: () => top(api.port, '/etc/haproxy/servers.state'),
        secret: async () => keys.private,
        ssh: shHost({ code: 1, stderr: 'mv: cannot move: Permission denied' }).ssh,
      });
      await assert.rejects(act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' }), (e: Error & { nonRetryable?: boolean }) => {
        assert.match(
          e.message,
          new RegExp(
            /^saving HAProxy's server state to \/etc\/haproxy\/servers\.state on lb \(stateFile of traffic driver "front"\) failed: /.source +
              /writing \/etc\/haproxy\/servers\.state on lb exited 1: mv: cannot move: Permission denied/.source,
          ),
        );
        assert.notEqual(e.nonRetryable, true);
        return true;
      });
    } finally {
      await api.close();
    }
  });

  it('without a stateFile: moves, and the move and every read say it will not survive an HAProxy restart', async () => {
    const api = await fakeRuntimeApi({ 'pg-dc1': 0, 'pg-dc2': 5 });
    try {
      const host = shHost();
      const act = createActivities({ topology: () => top(api.port, null), secret: async () => keys.private, ssh: host.ssh });
      const m = await act.trafficMove({ cluster: 'main', driver: 'front', site: 'dc2' });
      assert.deepEqual([m.site, m.changed], ['dc2', true]);
      assert.ok(m.detail.includes(`not saved: ${NO_STATE_FILE}`), m.detail);
      const r = await act.trafficRead({ cluster: 'main', driver: 'front' });
      assert.equal(r.site, 'dc2');
      assert.ok(r.detail.endsWith(`; ${NO_STATE_FILE}`), r.detail);
      assert.deepEqual(host.lines, [], 'nothing written anywhere');
    } finally {
      await api.close();
    }
  });

  it('a stateFile on an unknown host is refused at load, naming the path in the topology', () => {
    const input = JSON.parse(JSON.stringify(top(1, '/x/servers.state'))) as { clusters: { main: { traffic: { stateFile: { host: string } }[] } } };
    input.clusters.main.traffic[0].stateFile.host = 'nope';
    const r = topologySchema.safeParse(input);
    assert.equal(r.success, false);
    assert.deepEqual(
      r.error?.issues.map((i) => [i.path.join('.'), i.message]),
      [['clusters.main.traffic.0.stateFile.host', 'unknown host "nope"; known: "lb", "h1", "h2"']],
    );
  });
});
