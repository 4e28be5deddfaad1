/**
 * One fake SSH transport for unit tests, standing in for ActivityDeps.ssh: a connection to an
 * address listed unreachable is refused; otherwise the key the server "presents" goes to the
 * activities' own verifier (refused as ssh2 refuses a handshake), and every command line is
 * answered by the test's `run`. The log records the connections and each line run.
 */
import type { SshConnectConfig, SshExecResult, SshSessionLike, SshStreamOptions } from '../../src/activities/ssh/session';

/** What a command answers: its exit code (null: it ended without one), its output if any. */
export interface FakeReply {
  code: number | null;
  stdout?: string;
  stderr?: string;
  signal?: string | null;
  timedOut?: boolean;
}

export type ExecOptions = Parameters<SshSessionLike['exec']>[1];

/** Answers one command line on `host` (the address connected to); an Error, returned or thrown, fails the exec as a lost connection does. */
export type FakeRun = (command: string, ctx: { host: string; opts: ExecOptions }) => FakeReply | Error | Promise<FakeReply | Error>;

/** Runs one streamed command (SshSessionLike.execStream); without it the session cannot stream. */
export type FakeStream = (command: string, opts: SshStreamOptions) => Promise<SshExecResult>;

export interface FakeExec {
  host: string;
  command: string;
  timeoutMs: number;
}

export interface FakeSshLog {
  /** Every connection asked for, refused ones too. */
  configs: SshConnectConfig[];
  /** Every command line run (exec and execStream), where and with which timeout. */
  commands: FakeExec[];
  /** The same command lines alone. */
  lines: string[];
  /** Sessions that passed the host key check, and sessions closed. */
  opened: number;
  closed: number;
}

const newLog = (): FakeSshLog => ({ configs: [], commands: [], lines: [], opened: 0, closed: 0 });

/** The public key blob of an OpenSSH public key line, as a server presents it. */
export const keyBlob = (publicKey: string): Buffer => Buffer.from(publicKey.split(' ')[1], 'base64');

const exitZero: FakeRun = () => ({ code: 0 });

/** One session answering with `run` (and `stream`, if given), recording into `log`. */
export function fakeSession(run: FakeRun = exitZero, o: { host?: string; log?: FakeSshLog; stream?: FakeStream } = {}): SshSessionLike {
  const host = o.host ?? 'here';
  const log = o.log ?? newLog();
  const record = (command: string, timeoutMs: number) => {
    log.commands.push({ host, command, timeoutMs });
    log.lines.push(command);
  };
  const session: SshSessionLike = {
    async exec(command, opts) {
      record(command, opts.timeoutMs);
      const r = await run(command, { host, opts });
      if (r instanceof Error) throw r;
      return { code: r.code, signal: r.signal ?? null, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut: r.timedOut ?? false };
    },
    close() {
      log.closed++;
    },
  };
  const stream = o.stream;
  if (stream)
    session.execStream = (command, opts) => {
      record(command, opts.timeoutMs);
      return stream(command, opts);
    };
  return session;
}

/**
 * A transport whose servers present `presents` (an OpenSSH public key line) and answer with `run`
 * (by default: exit 0, no output).
 */
export function fakeSsh(o: { presents: string; unreachable?: string[]; run?: FakeRun; stream?: FakeStream }) {
  const log = newLog();
  const ssh = async (cfg: SshConnectConfig): Promise<SshSessionLike> => {
    log.configs.push(cfg);
    if (o.unreachable?.includes(cfg.host))
      throw Object.assign(new Error(`connect ECONNREFUSED ${cfg.host}:22`), { code: 'ECONNREFUSED', level: 'client-socket' });
    // What ssh2 does: refuse the handshake when the verifier says no.
    if (!cfg.hostVerifier(keyBlob(o.presents))) throw Object.assign(new Error('Handshake failed: host key verification failed'), { level: 'handshake' });
    log.opened++;
    return fakeSession(o.run, { host: cfg.host, log, stream: o.stream });
  };
  return { ssh, log };
}
