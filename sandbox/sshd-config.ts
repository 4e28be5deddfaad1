/**
 * The sshd_config of a loopback host: key auth only, as one run-as user, no PAM, no forwarding,
 * room for many sessions. The sandbox's hosts and bench/peers' repmgr hosts use it.
 */
export interface SshdConfigOptions {
  /** The first line's comment: whose sshd this is. */
  comment: string;
  /** address:port */
  listen: string;
  hostKey: string;
  pidFile: string;
  authorizedKeys: string;
  user: string;
}

export function sshdConfig(o: SshdConfigOptions): string {
  return `# ${o.comment}
ListenAddress ${o.listen}
HostKey ${o.hostKey}
PidFile ${o.pidFile}
AuthorizedKeysFile ${o.authorizedKeys}
AllowUsers ${o.user}
UsePAM no
StrictModes no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitUserRC no
PrintMotd no
PrintLastLog no
MaxStartups 64:30:128
MaxSessions 32
ClientAliveInterval 15
Subsystem sftp internal-sftp
LogLevel INFO
`;
}
