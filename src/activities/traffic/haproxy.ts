/**
 * The haproxy traffic driver: HAProxy's runtime API over TCP, reading `show servers state`, which
 * server takes new connections, pointing a backend at one server, and saving the state to the
 * driver's stateFile so that a restart keeps the move.
 */
import { connect } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import type { TrafficState } from '../../contract/observations';
import { configError } from '../resolver';
import { errorMessage, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { onHost } from '../ssh/exec';
import { writeFileAtomic } from '../ssh/files';
import { assertPointsAt, type Driver } from './driver';

/**
 * Send one command to HAProxy's runtime API over TCP and return the whole answer. HAProxy
 * answers a single (non-interactive) command and then closes the connection.
 */
export function haproxyCommand(address: string, port: number, command: string, timeoutMs: number): Promise<string> {
  if (/[\r\n;]/.test(command)) return Promise.reject(new Error('one HAProxy command per connection, without newlines or ";"'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = connect({ host: address, port });
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(
      () => done(new Error(`HAProxy runtime API ${address}:${port} did not answer "${command.split(' ')[0]} …" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('connect', () => sock.end(`${command}\n`));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (err) => done(new Error(`HAProxy runtime API ${address}:${port}: ${errorMessage(err)}`)));
    sock.on('close', () => done());
  });
}

export interface HaproxyServerState {
  name: string;
  address: string;
  port: number | null;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** srv_admin_state bit field (see `takesTraffic`). */
  adminState: number;
}

/** srv_admin_state bits that keep new connections away: FMAINT, IMAINT, RMAINT (0x23) and FDRAIN, IDRAIN (0x18). */
const ADMIN_OUT_OF_ROTATION = 0x23 | 0x18;

/**
 * Whether a server takes new connections by its admin state. Not simply "srv_admin_state 0": a
 * server written `disabled` in the config keeps CMAINT (0x04) after `set server … state ready`,
 * which only records where it started; HMAINT (0x40) only records an FQDN change.
 */
export function takesTraffic(s: HaproxyServerState): boolean {
  return (s.adminState & ADMIN_OUT_OF_ROTATION) === 0;
}

/** Parse the answer of `show servers state <backend>` (format version 1). */
export function parseServersState(text: string): HaproxyServerState[] {
  const lines = text.split('\n').map((l) => l.trim());
  const header = lines.find((l) => l.startsWith('# '));
  if (lines[0] !== '1' || !header) throw new Error(`unexpected answer to "show servers state": ${JSON.stringify(text.trim().slice(0, 200))}`);
  const cols = header.slice(2).split(/\s+/);
  const col = (name: string) => {
    const i = cols.indexOf(name);
    if (i < 0) throw new Error(`"show servers state" has no ${name} column`);
    return i;
  };
  const [iName, iAddr, iOp, iAdmin, iPort] = [col('srv_name'), col('srv_addr'), col('srv_op_state'), col('srv_admin_state'), cols.indexOf('srv_port')];
  return lines
    .filter((l) => l && !l.startsWith('#') && l !== '1')
    .map((l) => l.split(/\s+/))
    .map((f) => ({
      name: f[iName],
      address: f[iAddr],
      port: iPort >= 0 && /^\d+$/.test(f[iPort] ?? '') ? Number(f[iPort]) : null,
      opState: Number(f[iOp]),
      adminState: Number(f[iAdmin]),
    }));
}

const OP_STATE = ['stopped', 'starting', 'running', 'stopping'];

/** Said by reads and moves of an haproxy driver without a stateFile. */
export const NO_STATE_FILE = 'no stateFile in the topology: a move will not survive an HAProxy restart (its servers come back as its configuration file says)';

function haproxyState(d: Driver<'haproxy'>, servers: HaproxyServerState[]): TrafficState {
  const base = { driver: d.name, kind: d.kind } as const;
  const siteOf = new Map(Object.entries(d.servers).map(([site, srv]) => [srv, site]));
  const active = servers.filter(takesTraffic);
  const admin = (s: HaproxyServerState) => (takesTraffic(s) ? 'ready' : s.adminState & 0x23 ? 'maint' : 'drain');
  const list = servers.map((s) => `${s.name}:${admin(s)}/${OP_STATE[s.opState] ?? s.opState}`).join(', ');
  if (active.length !== 1) {
    return {
      ...base,
      site: null,
      target: null,
      detail: `${active.length === 0 ? 'no server' : `${active.length} servers`} of backend ${d.backend} in ready state (${list})`,
    };
  }
  const a = active[0];
  const site = siteOf.get(a.name) ?? null;
  const target = `${a.address}${a.port !== null ? `:${a.port}` : ''}`;
  return {
    ...base,
    site,
    target,
    detail: site
      ? `backend ${d.backend} sends new connections to ${a.name} (${list})`
      : `the ready server ${a.name} of backend ${d.backend} stands for no site (${list})`,
  };
}

function hap(rt: Runtime, d: Driver<'haproxy'>, command: string): Promise<string> {
  return haproxyCommand(d.admin.address, d.admin.port, command, rt.timeouts.haproxyMs);
}

async function hapServers(rt: Runtime, d: Driver<'haproxy'>): Promise<HaproxyServerState[]> {
  return parseServersState(await hap(rt, d, `show servers state ${d.backend}`));
}

/** Commands that change state answer nothing on success, an explanation otherwise. */
async function hapDo(rt: Runtime, d: Driver<'haproxy'>, command: string): Promise<void> {
  const answer = (await hap(rt, d, command)).trim();
  if (answer) throw new Error(`HAProxy refused "${command}": ${answer}`);
}

/** Where the backend sends new connections now (and, without a stateFile, that a restart would undo a move). */
export async function readHaproxy(rt: Runtime, d: Driver<'haproxy'>): Promise<TrafficState> {
  const st = haproxyState(d, await hapServers(rt, d));
  return d.stateFile ? st : { ...st, detail: `${st.detail}; ${NO_STATE_FILE}` };
}

/**
 * Save every backend's server state (`show servers state`, all backends, so other backends'
 * states are kept) to the driver's stateFile, atomically (temp file + rename): HAProxy loads it
 * at its next start. HAProxy has no runtime command that saves it. Throws (retryably) when it
 * cannot: a move that a restart would undo is not done.
 */
async function persistHaproxy(rt: Runtime, call: Call, cluster: string, d: Driver<'haproxy'>): Promise<string> {
  if (!d.stateFile) return `not saved: ${NO_STATE_FILE}`;
  const { host, path } = d.stateFile;
  const text = await hap(rt, d, 'show servers state');
  parseServersState(text); // never write an error message where HAProxy expects its state
  await onHost(rt, call, cluster, host, (open) => writeFileAtomic(open, path, Buffer.from(text, 'utf8'), { mode: '644', makeParent: true })).catch(
    (err: unknown) => {
      throw err instanceof ApplicationFailure
        ? err
        : new Error(`saving HAProxy's server state to ${path} on ${host} (stateFile of traffic driver "${d.name}") failed: ${errorMessage(err)}`);
    },
  );
  return `state saved to ${path} on ${host}`;
}

/**
 * Point the backend at one server, on every attempt, also when it already points there: every
 * other server to maint first, then the target ready (never two servers taking new
 * connections), then the sessions still open on every other server shut (maint stops new
 * connections only; a retry after maint but before the shutdown still cuts them), read back,
 * and the state saved to the stateFile.
 */
export async function moveHaproxy(rt: Runtime, call: Call, cluster: string, d: Driver<'haproxy'>, site: string, before: TrafficState): Promise<TrafficState> {
  const want = d.servers[site];
  const servers = await hapServers(rt, d);
  if (!servers.some((s) => s.name === want))
    throw configError(`backend ${d.backend} has no server "${want}" (named for site "${site}"); it has: ${servers.map((s) => s.name).join(', ') || 'none'}`);
  const others = servers.filter((s) => s.name !== want).map((s) => s.name);
  for (const s of others) await hapDo(rt, d, `set server ${d.backend}/${s} state maint`);
  await hapDo(rt, d, `set server ${d.backend}/${want} state ready`);
  for (const s of others) await hapDo(rt, d, `shutdown sessions server ${d.backend}/${s}`);
  heartbeat();
  const after = haproxyState(d, await hapServers(rt, d));
  const list = others.join(', ');
  const did = `${list ? `${list} maint, ` : ''}${want} ready${list ? `, sessions on ${list} shut` : ''}`;
  assertPointsAt(after, site, did);
  const saved = await persistHaproxy(rt, call, cluster, d);
  const changed = before.site !== site;
  return {
    ...after,
    changed,
    detail: `${changed ? `${did} (was ${before.site ?? 'none'})` : `already points at ${site}; kept: ${did}`}; ${saved}; now ${after.detail}`,
  };
}
