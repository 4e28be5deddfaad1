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
      const stop = () => {
        try {
          channel?.signal('KILL');
        } catch {
          /* the server may not support signals; closing the channel is what matters */
        }
        channel?.close();
      };
      const timer = setTimeout(() => {
        timedOut = true;
        stop();
      }, timeoutMs);
      signal?.addEventListener('abort', stop, { once: true });
      try {
        const r = await ssh.execCommand(command, {
          noTrim: true,
          onChannel: (ch) => {
            channel = ch;
            if (timedOut || signal?.aborted) stop();
          },
          onStdout: () => onData?.(),
          onStderr: () => onData?.(),
        });
        const stderr = lateError && r.code === null && !timedOut ? `${r.stderr}${r.stderr ? '\n' : ''}connection lost: ${lateError.message}` : r.stderr;
        return { code: timedOut ? null : r.code, signal: r.signal, stdout: r.stdout, stderr, timedOut };
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', stop);
      }
    },
    close() {
      ssh.dispose();
    },
  };
}
