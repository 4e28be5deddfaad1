/**
 * The default SSH session: node-ssh (ssh2) with the host key checked by the caller's verifier and
 * only the pinned key's algorithm offered, so the server presents the key that was pinned.
 */
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import type { SshConnectConfig, SshExecResult, SshSessionLike } from './deps';

export async function nodeSshConnect(cfg: SshConnectConfig): Promise<SshSessionLike> {
  const ssh = new NodeSSH();
  // Errors after the handshake (a reset mid-command) must not become an unhandled 'error' event
  // that takes the worker down; the command in flight sees its channel close instead.
  let lateError: Error | undefined;
  try {
    await ssh.connect({
      host: cfg.host,
      port: cfg.port,
      username: cfg.username,
      privateKey: cfg.privateKey,
      passphrase: cfg.passphrase,
      readyTimeout: cfg.readyTimeout,
      hostVerifier: (key: Buffer) => cfg.hostVerifier(key),
      algorithms: { serverHostKey: cfg.hostKeyAlgorithms as never },
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      tryKeyboard: false,
    });
  } catch (err) {
    ssh.dispose();
    throw err;
  }
  ssh.connection?.on('error', (err: Error) => {
    lateError = err;
  });

  return {
    async exec(command, { timeoutMs, signal, onData }): Promise<SshExecResult> {
      let channel: ClientChannel | undefined;
      let timedOut = false;
      const out: string[] = [];
      const err: string[] = [];
      const stop = () => {
        try {
          // Delivered by sshd as killpg() on the command's process group where it supports it.
          channel?.signal('KILL');
        } catch {
          /* the server may not support signals */
        }
        channel?.close();
      };
      // sshd keeps the channel open until the command exits, so a command that ignores the
      // signal would hold us forever: after a short grace the result is returned without it and
      // the caller's close() drops the connection.
      let giveUp: (() => void) | undefined;
      const gaveUp = new Promise<'gave-up'>((resolve) => (giveUp = () => resolve('gave-up')));
      let grace: NodeJS.Timeout | undefined;
      const expire = () => {
        timedOut = true;
        stop();
        grace = setTimeout(() => giveUp?.(), 1_000);
      };
      const timer = setTimeout(expire, timeoutMs);
      const onAbort = () => {
        stop();
        grace = setTimeout(() => giveUp?.(), 1_000);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const running = ssh.execCommand(command, {
        noTrim: true,
        onChannel: (ch) => {
          channel = ch;
          if (timedOut || signal?.aborted) stop();
        },
        onStdout: (chunk) => {
          out.push(chunk.toString('utf8'));
          onData?.();
        },
        onStderr: (chunk) => {
          err.push(chunk.toString('utf8'));
          onData?.();
        },
      });
      running.catch(() => undefined);
      try {
        const r = await Promise.race([running, gaveUp]);
        if (r === 'gave-up') return { code: null, signal: null, stdout: out.join(''), stderr: err.join(''), timedOut };
        const stderr = lateError && r.code === null && !timedOut ? `${r.stderr}${r.stderr ? '\n' : ''}connection lost: ${lateError.message}` : r.stderr;
        return { code: timedOut ? null : r.code, signal: r.signal, stdout: r.stdout, stderr, timedOut };
      } finally {
        clearTimeout(timer);
        clearTimeout(grace);
        signal?.removeEventListener('abort', onAbort);
      }
    },
    close() {
      ssh.dispose();
    },
  };
}
