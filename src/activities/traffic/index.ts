/**
 * Where client traffic points, and moving it: HAProxy's runtime API, an Elastic IP, a secondary
 * private IP, or a pair of commands. Moves are check-then-act and verified by reading back.
 */
import { connect } from 'node:net';
import {
  AssignPrivateIpAddressesCommand,
  AssociateAddressCommand,
  DescribeNetworkInterfacesCommand,
  UnassignPrivateIpAddressesCommand,
  type EC2Client,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import type { TrafficDriverConfig } from '../../topology/schema';
import { configError } from '../resolver';
import { errorMessage, heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import { describeAddress, nodeInstances, nodeOfInstance, primaryInterfaceId, theInstance, withEc2, type NodeInstance } from '../ec2';
import { execArgv, onHost, runOnHost, SshConnectError, withHost } from '../ssh/exec';
import { writeFileAtomic } from '../ssh/files';
import { substitute } from '../ssh/quote';
import type { TrafficState } from '../../contract/observations';
import { Errors } from '../../contract/errors';

type Driver<K extends TrafficDriverConfig['kind']> = Extract<TrafficDriverConfig, { kind: K }>;

// ---------------------------------------------------------------------------------------------
// HAProxy runtime API

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

// ---------------------------------------------------------------------------------------------
// Private IP holders

interface Holder {
  eni: string;
  instanceId: string | null;
}

function holds(n: NetworkInterface, address: string): boolean {
  return (n.PrivateIpAddresses ?? []).some((p) => p.PrivateIpAddress === address) || n.PrivateIpAddress === address;
}

/**
 * Every interface holding `address`: the AWS filter finds holders anywhere in the account, and
 * the cluster's own instances' interfaces are also checked one by one, because emulators (moto)
 * match that filter against primary addresses only.
 */
async function privateIpHolders(ec2: EC2Client, address: string, nis: NodeInstance[]): Promise<Holder[]> {
  const found = new Map<string, Holder>();
  const add = (list: NetworkInterface[] | undefined) => {
    for (const n of list ?? [])
      if (n.NetworkInterfaceId && holds(n, address))
        found.set(n.NetworkInterfaceId, { eni: n.NetworkInterfaceId, instanceId: n.Attachment?.InstanceId ?? null });
  };
  add((await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'addresses.private-ip-address', Values: [address] }] }))).NetworkInterfaces);
  const ids = nis.flatMap((ni) => ni.matches.map((i) => i.InstanceId ?? '')).filter(Boolean);
  if (ids.length) add((await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: ids }] }))).NetworkInterfaces);
  return [...found.values()].sort((a, b) => a.eni.localeCompare(b.eni));
}

function privateIpState(d: Driver<'private-ip'>, holders: Holder[], nis: NodeInstance[]): TrafficState {
  const base = { driver: d.name, kind: d.kind } as const;
  const desc = (h: Holder) => `${h.eni}${h.instanceId ? ` on ${h.instanceId}` : ' (unattached)'}`;
  if (holders.length === 0) return { ...base, site: null, target: null, detail: `no network interface holds ${d.address}` };
  if (holders.length > 1)
    return { ...base, site: null, target: null, detail: `${holders.length} interfaces hold ${d.address}: ${holders.map(desc).join(', ')}` };
  const h = holders[0];
  const ni = nodeOfInstance(nis, h.instanceId ?? undefined);
  const target = `${h.instanceId ?? h.eni} (${d.address})`;
  return ni
    ? { ...base, site: ni.site, target, detail: `${d.address} is on ${desc(h)}, node "${ni.node}"` }
    : { ...base, site: null, target, detail: `${d.address} is on ${desc(h)}, which is no database node` };
}

// ---------------------------------------------------------------------------------------------
// Activities

export function trafficActivities(rt: Runtime) {
  const t = rt.timeouts;

  const hap = (d: Driver<'haproxy'>, command: string) => haproxyCommand(d.admin.address, d.admin.port, command, t.haproxyMs);
  const hapServers = async (d: Driver<'haproxy'>) => parseServersState(await hap(d, `show servers state ${d.backend}`));
  /** Commands that change state answer nothing on success, an explanation otherwise. */
  const hapDo = async (d: Driver<'haproxy'>, command: string) => {
    const answer = (await hap(d, command)).trim();
    if (answer) throw new Error(`HAProxy refused "${command}": ${answer}`);
  };

  const elasticIpState = async (call: Call, cluster: string, d: Driver<'elastic-ip'>, ec2: EC2Client): Promise<TrafficState> => {
    const base = { driver: d.name, kind: d.kind } as const;
    const a = await describeAddress(ec2, d.publicIp);
    if (!a) return { ...base, site: null, target: null, detail: `no Elastic IP ${d.publicIp} in this account and region` };
    if (!a.InstanceId) return { ...base, site: null, target: null, detail: `${d.publicIp} is not associated with an instance` };
    const ni = nodeOfInstance(await nodeInstances(ec2, call.top.cluster(cluster)), a.InstanceId);
    const target = `${a.InstanceId} (${a.PrivateIpAddress ?? '?'})`;
    return ni
      ? { ...base, site: ni.site, target, detail: `${d.publicIp} is on ${a.InstanceId}, node "${ni.node}"` }
      : { ...base, site: null, target, detail: `${d.publicIp} is on ${a.InstanceId}, which is no database node` };
  };

  const commandState = (d: Driver<'command'>, sites: string[], r: { exitCode: number | null; stdout: string; stderr: string }): TrafficState => {
    const base = { driver: d.name, kind: d.kind, target: null } as const;
    if (r.exitCode !== 0)
      return { ...base, site: null, detail: `read command exited ${r.exitCode ?? 'without status'}: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 300)}` };
    const out = r.stdout.trim();
    return sites.includes(out)
      ? { ...base, site: out, detail: `read command says ${out}` }
      : { ...base, site: null, detail: `read command printed ${JSON.stringify(out.slice(0, 100))}, which is no site` };
  };

  /** Read where traffic points; `strict` throws on unreachable targets (for moves), else reports them. */
  const read = async (call: Call, cluster: string, d: TrafficDriverConfig, strict: boolean): Promise<TrafficState> => {
    const unreadable = (err: unknown): TrafficState => {
      if (strict || err instanceof ApplicationFailure) throw err instanceof SshConnectError ? err.toActionError() : err;
      return { driver: d.name, kind: d.kind, site: null, target: null, detail: `cannot read: ${errorMessage(err)}` };
    };
    try {
      switch (d.kind) {
        case 'haproxy': {
          const st = haproxyState(d, await hapServers(d));
          return d.stateFile ? st : { ...st, detail: `${st.detail}; ${NO_STATE_FILE}` };
        }
        case 'elastic-ip':
          return await withEc2(rt, call, cluster, (ec2) => elasticIpState(call, cluster, d, ec2));
        case 'private-ip':
          return await withEc2(rt, call, cluster, async (ec2) => {
            const nis = await nodeInstances(ec2, call.top.cluster(cluster));
            return privateIpState(d, await privateIpHolders(ec2, d.address, nis), nis);
          });
        case 'command': {
          const sites = Object.keys(call.top.cluster(cluster).sites);
          return await withHost(rt, call, cluster, d.host, async (open) => commandState(d, sites, await execArgv(open, d.read, d.timeoutSeconds)));
        }
      }
    } catch (err) {
      return unreadable(err);
    }
  };

  const verified = (after: TrafficState, site: string, did: string): TrafficState => {
    if (after.site !== site)
      throw new Error(`traffic driver "${after.driver}" still does not point at site "${site}" after the move (${did}); read back: ${after.detail}`);
    return { ...after, changed: true, detail: `${did}; now ${after.detail}` };
  };

  /**
   * Save every backend's server state (`show servers state`, all backends, so other backends'
   * states are kept) to the driver's stateFile, atomically (temp file + rename): HAProxy loads it
   * at its next start. HAProxy has no runtime command that saves it. Throws (retryably) when it
   * cannot: a move that a restart would undo is not done.
   */
  const persistHaproxy = async (call: Call, cluster: string, d: Driver<'haproxy'>): Promise<string> => {
    if (!d.stateFile) return `not saved: ${NO_STATE_FILE}`;
    const { host, path } = d.stateFile;
    const text = await hap(d, 'show servers state');
    parseServersState(text); // never write an error message where HAProxy expects its state
    await onHost(rt, call, cluster, host, (open) => writeFileAtomic(open, path, Buffer.from(text, 'utf8'), { mode: '644', makeParent: true })).catch(
      (err: unknown) => {
        throw err instanceof ApplicationFailure
          ? err
          : new Error(`saving HAProxy's server state to ${path} on ${host} (stateFile of traffic driver "${d.name}") failed: ${errorMessage(err)}`);
      },
    );
    return `state saved to ${path} on ${host}`;
  };

  /**
   * Point the backend at one server, on every attempt, also when it already points there: every
   * other server to maint first, then the target ready (never two servers taking new
   * connections), then the sessions still open on every other server shut (maint stops new
   * connections only; a retry after maint but before the shutdown still cuts them), read back,
   * and the state saved to the stateFile.
   */
  const moveHaproxy = async (call: Call, cluster: string, d: Driver<'haproxy'>, site: string, before: TrafficState): Promise<TrafficState> => {
    const want = d.servers[site];
    const servers = await hapServers(d);
    if (!servers.some((s) => s.name === want))
      throw configError(`backend ${d.backend} has no server "${want}" (named for site "${site}"); it has: ${servers.map((s) => s.name).join(', ') || 'none'}`);
    const others = servers.filter((s) => s.name !== want).map((s) => s.name);
    for (const s of others) await hapDo(d, `set server ${d.backend}/${s} state maint`);
    await hapDo(d, `set server ${d.backend}/${want} state ready`);
    for (const s of others) await hapDo(d, `shutdown sessions server ${d.backend}/${s}`);
    heartbeat();
    const after = haproxyState(d, await hapServers(d));
    const list = others.join(', ');
    const did = `${list ? `${list} maint, ` : ''}${want} ready${list ? `, sessions on ${list} shut` : ''}`;
    if (after.site !== site)
      throw new Error(`traffic driver "${d.name}" still does not point at site "${site}" after the move (${did}); read back: ${after.detail}`);
    const saved = await persistHaproxy(call, cluster, d);
    const changed = before.site !== site;
    return {
      ...after,
      changed,
      detail: `${changed ? `${did} (was ${before.site ?? 'none'})` : `already points at ${site}; kept: ${did}`}; ${saved}; now ${after.detail}`,
    };
  };

  const moveElasticIp = async (call: Call, cluster: string, d: Driver<'elastic-ip'>, site: string): Promise<TrafficState> =>
    withEc2(rt, call, cluster, async (ec2) => {
      const [node] = call.top.nodeOfSite(cluster, site);
      const nis = await nodeInstances(ec2, call.top.cluster(cluster));
      const one = theInstance(nis.find((n) => n.node === node) as NodeInstance);
      if ('problem' in one) throw new Error(`cannot move ${d.publicIp} to site "${site}": ${one.problem}`);
      const instanceId = one.instance.InstanceId as string;
      const a = await describeAddress(ec2, d.publicIp);
      if (!a)
        throw ApplicationFailure.nonRetryable(`no Elastic IP ${d.publicIp} in this account and region (traffic driver "${d.name}")`, Errors.Ec2AddressNotFound);
      const from = a.InstanceId ?? 'nothing';
      await ec2.send(
        new AssociateAddressCommand(
          a.AllocationId
            ? { AllocationId: a.AllocationId, InstanceId: instanceId, AllowReassociation: true }
            : { PublicIp: d.publicIp, InstanceId: instanceId, AllowReassociation: true },
        ),
      );
      heartbeat();
      return verified(await elasticIpState(call, cluster, d, ec2), site, `associated ${d.publicIp} with ${instanceId} (was on ${from})`);
    });

  const movePrivateIp = async (call: Call, cluster: string, d: Driver<'private-ip'>, site: string): Promise<TrafficState> =>
    withEc2(rt, call, cluster, async (ec2) => {
      const [node] = call.top.nodeOfSite(cluster, site);
      const nis = await nodeInstances(ec2, call.top.cluster(cluster));
      const one = theInstance(nis.find((n) => n.node === node) as NodeInstance);
      if ('problem' in one) throw new Error(`cannot move ${d.address} to site "${site}": ${one.problem}`);
      const eni = primaryInterfaceId(one.instance);
      if (!eni) throw new Error(`instance ${one.instance.InstanceId} of node "${node}" has no primary network interface`);
      const before = await privateIpHolders(ec2, d.address, nis);
      await ec2.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: eni, PrivateIpAddresses: [d.address], AllowReassignment: true }));
      heartbeat();
      // AWS moves the address on reassignment; emulators may leave it on both. Unassign from
      // whoever still holds it besides the new interface.
      const stale = (await privateIpHolders(ec2, d.address, nis)).filter((h) => h.eni !== eni);
      for (const h of stale) await ec2.send(new UnassignPrivateIpAddressesCommand({ NetworkInterfaceId: h.eni, PrivateIpAddresses: [d.address] }));
      const from = before.filter((h) => h.eni !== eni).map((h) => h.eni);
      const did = `assigned ${d.address} to ${eni} of ${one.instance.InstanceId}${from.length ? ` (was on ${from.join(', ')}${stale.length ? `, unassigned from ${stale.map((h) => h.eni).join(', ')}` : ''})` : ''}`;
      return verified(privateIpState(d, await privateIpHolders(ec2, d.address, nis), nis), site, did);
    });

  const moveCommand = async (call: Call, cluster: string, d: Driver<'command'>, site: string): Promise<TrafficState> => {
    const [, n] = call.top.nodeOfSite(cluster, site);
    const argv = substitute(d.move, { site, address: n.host, port: String(n.port) });
    const r = await runOnHost(rt, call, cluster, d.host, argv, d.timeoutSeconds);
    if (r.exitCode !== 0) {
      throw new Error(
        `move command of traffic driver "${d.name}" ${r.timedOut ? 'timed out' : `exited ${r.exitCode ?? 'without status'}`}: ${(r.stderr.trim() || r.stdout.trim()).slice(-500)}`,
      );
    }
    return verified(await read(call, cluster, d, true), site, `ran ${r.command}`);
  };

  return {
    /** Where a driver sends traffic now. Never throws for an unreachable target (site null, detail says why). */
    trafficRead: rt.activity((input: { cluster: string; driver: string }, call) =>
      read(call, input.cluster, call.top.driver(input.cluster, input.driver), false),
    ),

    /**
     * Point a driver at a site: no-op when it already does (haproxy: still shuts stray sessions and
     * saves the state); verified by reading back (throws if it disagrees).
     */
    trafficMove: rt.activity(async (input: { cluster: string; driver: string; site: string }, call): Promise<TrafficState> => {
      const d = call.top.driver(input.cluster, input.driver);
      call.top.nodeOfSite(input.cluster, input.site);
      const before = await read(call, input.cluster, d, true);
      // HAProxy is put in order even when it already points there: a retry after maint but before
      // the sessions were shut, or before the state was saved, finishes the move.
      if (before.site === input.site && d.kind !== 'haproxy') return { ...before, changed: false, detail: `already points at ${input.site}: ${before.detail}` };
      let after: TrafficState;
      switch (d.kind) {
        case 'haproxy':
          after = await moveHaproxy(call, input.cluster, d, input.site, before);
          if (!after.changed) return after;
          break;
        case 'elastic-ip':
          after = await moveElasticIp(call, input.cluster, d, input.site);
          break;
        case 'private-ip':
          after = await movePrivateIp(call, input.cluster, d, input.site);
          break;
        case 'command':
          after = await moveCommand(call, input.cluster, d, input.site);
          break;
      }
      rt.log.info('traffic moved', { cluster: input.cluster, driver: d.name, from: before.site, to: input.site });
      return after;
    }),
  };
}
