/**
 * The topology: what a cluster is made of and how switchyard reaches each part.
 * Pure data and validation; imported by workflows (types only), activities, worker and client.
 *
 * Secrets (database passwords, SSH private keys, cloud credentials, webhook URLs with tokens) are
 * never written inline: they are references `{ env: NAME }` or `{ file: PATH }` resolved by the
 * worker at the moment it connects, so they never enter workflow inputs, results or history.
 */
import { z } from 'zod';

import { checkCheckpointPolicy, checkpointSchema } from './checkpoints';
import { absPath, address, duration, name, nonNegativeInt, port, positiveInt, secretRef } from './fields';
import { consoleSchema, operatorsSchema } from './operators';
import { metricsSchema, temporalSchema } from './temporal';
import { storeSchema } from './backup-store';
import { fileSetsSchema } from './backup-files';

export { DURATION_RE, durationSeconds } from './duration';
export { secretRef, type SecretRef } from './fields';

/** A command as an argument vector. Quoted by one helper before it is sent over SSH. */
const argv = z
  .array(z.string({ error: 'expected each argument to be a string' }), {
    error: 'expected a command as a list of arguments, e.g. ["systemctl", "start", "app"]',
  })
  .min(1, { error: 'expected a command with at least one argument' });

const HOST_KEY_RE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,3}( .*)?$/;

export const hostSchema = z
  .object({
    /** The site the host belongs to; left out for shared infrastructure (a load balancer in front of both sites). */
    site: name.optional(),
    address,
    port: port.default(22),
    user: z.string().min(1).optional(),
    /** The host's public key in OpenSSH format ("ssh-ed25519 AAAA…"): the only key accepted. */
    hostKey: z
      .string({ error: 'expected the host public key in OpenSSH format, e.g. "ssh-ed25519 AAAA…"' })
      .regex(HOST_KEY_RE, { error: 'expected the host public key in OpenSSH format, e.g. "ssh-ed25519 AAAA…" (one line of the host\'s ssh_host_*_key.pub)' }),
  })
  .strict();
export type HostConfig = z.infer<typeof hostSchema>;

const ec2Selector = z
  .object({
    /** Tags that identify exactly one instance. */
    tags: z.record(z.string(), z.string(), { error: 'expected a map of tag names to values' }).optional(),
    instanceId: z
      .string()
      .regex(/^i-[0-9a-f]+$/, { error: 'expected an instance id such as "i-0123456789abcdef0"' })
      .optional(),
  })
  .strict()
  .refine((s) => (s.tags !== undefined && Object.keys(s.tags).length > 0) !== (s.instanceId !== undefined), {
    error: 'an EC2 selector names exactly one of "tags" (non-empty) or "instanceId"',
  });
export type Ec2Selector = z.infer<typeof ec2Selector>;

export const dbNodeSchema = z
  .object({
    site: name,
    /** Key into `hosts`: where shell steps (pg_ctl, pg_rewind …) run for this node. */
    sshHost: name,
    /** Where PostgreSQL listens, as seen from the worker. */
    host: address,
    port: port.default(5432),
    dataDir: absPath,
    /**
     * Where postgresql.conf lives when it is kept outside the data directory (Debian's
     * /etc/postgresql/15/main layout): pg_ctl is pointed here, and pg_rewind or pg_basebackup
     * cannot overwrite the node's own settings. Defaults to dataDir.
     */
    configDir: absPath.optional(),
    /** Directory holding pg_ctl, pg_rewind, pg_basebackup, pg_controldata on that host. */
    binDir: absPath,
    /** Replication slot on the primary that this node streams from while it is a standby. */
    slot: z.string().regex(/^[a-z0-9_]{1,63}$/, { error: 'expected a replication slot name (lowercase letters, digits, "_")' }),
    /**
     * Where `pg_ctl start` writes the server's early log when switchyard starts this node (an
     * aborted failover restarting the old primary, a rejoin). Default: <configDir or dataDir>/switchyard-pg.log.
     */
    logFile: absPath.optional(),
    /**
     * Files copied from the primary's host when this node rejoins: a path
     * (the same on both hosts) or { from: <path on the primary's host>, to: <path on this node's host> }.
     */
    configFiles: z
      .array(
        z.union([absPath, z.object({ from: absPath, to: absPath }).strict()], {
          error: 'expected an absolute path, or { from: /path/on/the/primary/host, to: /path/on/this/host }',
        }),
      )
      .default([]),
    ec2: ec2Selector.optional(),
    /**
     * The OS service that starts PostgreSQL at boot (systemd's postgresql@15-main): a failover's
     * fence disables it so a rebooted former primary does not start at all; rejoin enables it.
     */
    service: z.object({ disable: argv, enable: argv }).strict().optional(),
    /**
     * Power control for this node (STONITH: a BMC, a cloud API, a PDU), run on `host` when a
     * failover cannot fence the node over SSH, and by the guard when the fenced node answers as a
     * primary again. Exit 0 means the node is powered off. "{node}", "{address}" and "{port}" are
     * replaced before quoting.
     */
    stonith: z
      .object({ host: name, command: argv, timeoutSeconds: positiveInt.default(60) })
      .strict()
      .optional(),
  })
  .strict();
export type DbNodeConfig = z.infer<typeof dbNodeSchema>;

const serviceSchema = z
  .object({
    host: name,
    start: argv,
    stop: argv,
    /** Exit status 0 means running, anything else means stopped. */
    status: argv,
  })
  .strict();
export type ServiceConfig = z.infer<typeof serviceSchema>;

const maintenanceSchema = z
  .object({
    host: name,
    on: argv,
    off: argv,
    /** Exit status 0 means maintenance is on, anything else means off. */
    status: argv,
  })
  .strict();

const hookSchema = z
  .object({
    name,
    host: name,
    command: argv,
    /**
     * Exit 0 means the hook's work is already done (a retry after a lost connection, a second
     * run): the command is not run again. With a check, the hook is retried once; without, never.
     */
    check: argv.optional(),
    timeoutSeconds: positiveInt.default(300),
  })
  .strict();

export const siteSchema = z
  .object({
    /** The site's application health URL: 200 when serving, 503 in maintenance. */
    app: z
      .object({ url: z.url({ error: 'expected an http(s) URL' }) })
      .strict()
      .optional(),
    maintenance: maintenanceSchema.optional(),
    services: z.record(name, serviceSchema).default({}),
    /** Commands run on this site after its database is promoted. */
    hooks: z
      .object({ afterPromote: z.array(hookSchema).default([]) })
      .strict()
      .default({ afterPromote: [] }),
    /**
     * Key into `hosts`: an SSH host at this site from which the watch also probes the other sites'
     * database nodes (pg_isready), so that a partition between the worker and another site alone
     * is not taken for that site's death. `binDir`: where pg_isready is on that host (default: PATH).
     */
    vantage: z.object({ host: name, binDir: absPath.optional() }).strict().optional(),
  })
  .strict();
export type SiteConfig = z.infer<typeof siteSchema>;

const haproxyDriver = z
  .object({
    kind: z.literal('haproxy'),
    name,
    /** HAProxy runtime API (stats socket "level admin") on TCP. */
    admin: z.object({ address, port }).strict(),
    backend: z.string().min(1),
    /** Which server line of the backend stands for each site. */
    servers: z.record(name, z.string().min(1)),
    /** Where clients connect; used to verify where new connections land. */
    listen: z.object({ address, port }).strict(),
    /**
     * HAProxy's `server-state-file` (with `load-server-state-from-file global`) on a host of
     * `hosts`: every move writes `show servers state` there, so a restarted HAProxy keeps it.
     * Without it, a move does not survive an HAProxy restart (moves and reads say so).
     */
    stateFile: z.object({ host: name, path: absPath }).strict().optional(),
  })
  .strict();

const elasticIpDriver = z
  .object({
    kind: z.literal('elastic-ip'),
    name,
    publicIp: z.ipv4({ error: 'expected an IPv4 address' }),
  })
  .strict();

const privateIpDriver = z
  .object({
    kind: z.literal('private-ip'),
    name,
    /** Secondary private IP moved to the primary's network interface. */
    address: z.ipv4({ error: 'expected an IPv4 address' }),
  })
  .strict();

const commandDriver = z
  .object({
    kind: z.literal('command'),
    name,
    host: name,
    /** Points traffic at a site; "{site}", "{address}" and "{port}" are replaced before quoting. */
    move: argv,
    /** Prints the name of the site traffic points at. */
    read: argv,
    timeoutSeconds: positiveInt.default(120),
  })
  .strict();

export const trafficDriverSchema = z.discriminatedUnion('kind', [haproxyDriver, elasticIpDriver, privateIpDriver, commandDriver], {
  error: 'expected a traffic driver with "kind" one of: haproxy, elastic-ip, private-ip, command',
});
export type TrafficDriverConfig = z.infer<typeof trafficDriverSchema>;

const awsRegion = z
  .string({ error: 'expected an AWS region such as "eu-west-1"' })
  .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { error: 'expected an AWS region such as "eu-west-1"' });

const ec2Schema = z
  .object({
    region: awsRegion,
    /** Override for the EC2 API endpoint (a local emulator, a VPC endpoint). */
    endpoint: z.url({ error: 'expected an http(s) URL' }).optional(),
    credentials: z.object({ accessKeyId: secretRef, secretAccessKey: secretRef }).strict().optional(),
  })
  .strict();

const failoverSchema = z
  .object({
    /** Bound on reaching the old primary's database and hosts before deciding it cannot be reached. */
    reachTimeoutSeconds: positiveInt.default(10),
    /** `pg_ctl stop -m fast` gets this long before `-m immediate`. */
    fastStopTimeoutSeconds: positiveInt.default(20),
    /** Also stop the old primary's EC2 instance when fencing (needs an EC2 selector on the node). */
    stopInstance: z.boolean().default(false),
    /**
     * When to ask a person at `old-primary-dead`: only when the old primary could not be fenced
     * and confirmed down (`unfenced`), or on every failover (`always`).
     */
    confirmOldPrimaryDead: z.enum(['unfenced', 'always'], { error: 'expected "unfenced" or "always"' }).default('unfenced'),
    /** With stopInstance: an instance still "stopping" after this long gets a forced stop. */
    forceStopAfterSeconds: positiveInt.default(60),
    /**
     * A lower bound of the data lost (the old primary's position read before it was fenced, or by
     * readiness) counts as the figure only while the reading is younger than this; older, the run
     * asks at accept-data-loss. An exact figure (a clean shutdown checkpoint) never expires.
     */
    dataLossFreshness: duration.default('10s'),
    /** How often the guard started by a failover checks the fenced former primary. */
    guardIntervalSeconds: positiveInt.default(5),
    /**
     * Let a failover staged by the watch go on without a person, only when switchyard itself
     * fenced the old primary and confirmed it down, and the data lost is exact and within the
     * threshold; otherwise it waits at its checkpoint as in manual mode.
     */
    automatic: z.boolean().default(false),
    /** After an automatic failover, the next may be automatic only once a person acknowledged it (`switchyard watch ack`) or this long passed. */
    automaticCoolDown: duration.default('1h'),
  })
  .strict();

const switchoverSchema = z
  .object({
    /** Wait at the `start-switchover` checkpoint (a maintenance window) before changing anything. */
    confirmStart: z.boolean().default(false),
    /** How long the target may take to replay up to the old primary's shutdown checkpoint. */
    replayTimeoutSeconds: positiveInt.default(300),
  })
  .strict();

const rejoinSchema = z
  .object({
    /** How long a rejoined node may take to stream with lag below maxLagBytes. */
    catchUpTimeoutSeconds: positiveInt.default(900),
  })
  .strict();

/** One region EBS snapshots are copied to, with its own retention of the copies there. */
const ebsCopySchema = z
  .object(
    {
      region: awsRegion,
      /** Keep the last N backups' copies in that region. */
      keepLast: positiveInt,
      /** And every copy younger than this. */
      maxAge: duration,
      /** Encrypt the copies with this KMS key of the copy region (key id, alias or ARN); default the region's default EBS encryption. */
      kmsKeyId: z.string({ error: 'expected a KMS key id, alias or ARN' }).min(1, { error: 'expected a KMS key id, alias or ARN' }).optional(),
      /**
       * Where a restore in this region launches: subnets and security groups are per region, so the
       * recorded ones exist only in the source region. The recorded private IP is kept when it lies
       * in this subnet, else EC2 picks one (the restore says so). Without it, a restore there is
       * refused unless the recorded network exists in this region.
       */
      network: z
        .object({
          subnetId: z.string().regex(/^subnet-[0-9a-f]+$/, { error: 'expected a subnet id such as "subnet-0123456789abcdef0"' }),
          securityGroupIds: z
            .array(z.string().regex(/^sg-[0-9a-f]+$/, { error: 'expected a security group id such as "sg-0123456789abcdef0"' }))
            .min(1, { error: 'expected at least one security group id' }),
        })
        .strict()
        .optional(),
    },
    { error: 'expected { region, keepLast, maxAge, kmsKeyId?, network? }' },
  )
  .strict();

const backupEbsSchema = z
  .object({
    /** Copy each EBS backup's snapshots to these regions (CopySnapshot), awaited before retention. */
    copyTo: z.array(ebsCopySchema, { error: 'expected a list of { region, keepLast, maxAge, kmsKeyId? }' }).min(1, {
      error: 'expected at least one region to copy to (leave "ebs" out for no copies)',
    }),
  })
  .strict();

const archiveSchema = z
  .object({
    /** The physical replication slot pg_receivewal streams from (made on the primary it follows). */
    slot: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, { error: 'expected a replication slot name: 1 to 63 lowercase letters, digits and "_"' })
      .default('switchyard_archive'),
    /** How often the walArchive workflow checks the archiver, follows the primary and uploads finished segments. */
    intervalSeconds: positiveInt.default(5),
  })
  .strict();

const backupSchema = z
  .object({
    /**
     * Key into `hosts`: the backup server (as with Barman or a pgBackRest repository host). Base
     * backups are taken there with pg_basebackup from a database node, kept under `root`, and
     * drills restore them there on a scratch port.
     */
    host: name,
    /** Where backups are kept on that host: <root>/<cluster>/<backup id>/. */
    root: absPath,
    /** PostgreSQL binaries on that host (pg_basebackup; initdb-free drills need pg_ctl and postgres). */
    binDir: absPath,
    /** libpq password file on that host for the replication login; default postgres.passfile. */
    passfile: absPath.optional(),
    /** What a backup makes when its input names no kinds: "pg" (base backup), "ebs" (snapshots). */
    kinds: z
      .array(z.enum(['pg', 'ebs'], { error: 'expected "pg" or "ebs"' }))
      .min(1)
      .default(['pg']),
    /** gzip level of the base backup's tar files (pg_basebackup -Z). */
    compressLevel: z.number().int().min(1).max(9).default(6),
    keepLast: positiveInt.default(7),
    maxAge: duration.default('14d'),
    /** Readiness fails when the newest proven-restorable backup is older than this. */
    maxRestorableAge: duration.optional(),
    /** Queries a drill runs against the restored copy; each must succeed (row counts per table are added). */
    verifyQueries: z.array(z.string().min(1)).default([]),
    /** The port a drill's scratch server listens on (loopback of the backup host). */
    drillPort: port.default(55432),
    /**
     * An offsite copy of every base backup in an S3-compatible bucket: uploaded after the backup's
     * manifest is written, deleted with it by retention, downloaded by a drill or a restore when the
     * backup host no longer has it.
     */
    store: storeSchema.optional(),
    /** Named file sets (a CA directory, keys, configuration) backed up with every base backup and restored onto a host by name. */
    files: fileSetsSchema.optional(),
    /**
     * Continuous WAL archiving for point-in-time recovery: pg_receivewal on the backup host, with
     * its own replication slot on the current primary, supervised by the walArchive workflow
     * (which follows a new primary after a failover or switchover), into <root>/<cluster>/.wal/
     * and, with a store, to <prefix><cluster>/wal/ there.
     */
    archive: archiveSchema.optional(),
    /** Readiness fails when the WAL archive is further behind the primary than this (its RPO now), or its lag cannot be read. */
    maxArchiveLag: duration.optional(),
    /** EBS snapshot backups: copies in other regions. */
    ebs: backupEbsSchema.optional(),
  })
  .strict();

export const clusterSchema = z
  .object({
    /** The site that is primary in the normal layout; failback returns here. */
    preferredPrimary: name,
    sites: z.record(name, siteSchema),
    hosts: z.record(name, hostSchema),
    ssh: z
      .object({
        user: z.string().min(1),
        privateKey: secretRef,
        passphrase: secretRef.optional(),
        connectTimeoutSeconds: positiveInt.default(5),
      })
      .strict(),
    postgres: z
      .object({
        database: z.string().min(1).default('postgres'),
        user: z.string().min(1),
        password: secretRef.optional(),
        replication: z.object({ user: z.string().min(1), password: secretRef.optional() }).strict(),
        /**
         * A libpq password file on every database host (mode 0600, owned by the server's OS user)
         * holding the replication and tool logins. Standbys' primary_conninfo, pg_rewind and
         * pg_basebackup name it (passfile=…) so no password is ever written into a command or a
         * configuration file. Without it, those logins must work without a password (trust, cert).
         */
        passfile: absPath.optional(),
        /** A standby further behind than this is not ready (and not a switchover target). */
        maxLagBytes: nonNegativeInt.default(16 * 1024 * 1024),
        /** Failover asks a person (accept-data-loss) past this many bytes not received. */
        dataLossThresholdBytes: nonNegativeInt.default(0),
        nodes: z.record(name, dbNodeSchema),
      })
      .strict(),
    traffic: z.array(trafficDriverSchema).default([]),
    ec2: ec2Schema.optional(),
    failover: failoverSchema.default({
      reachTimeoutSeconds: 10,
      fastStopTimeoutSeconds: 20,
      stopInstance: false,
      confirmOldPrimaryDead: 'unfenced',
      forceStopAfterSeconds: 60,
      dataLossFreshness: '10s',
      guardIntervalSeconds: 5,
      automatic: false,
      automaticCoolDown: '1h',
    }),
    switchover: switchoverSchema.default({ confirmStart: false, replayTimeoutSeconds: 300 }),
    rejoin: rejoinSchema.default({ catchUpTimeoutSeconds: 900 }),
    checkpoints: checkpointSchema.prefault({}),
    notify: z
      .object({
        webhook: z
          .object({
            url: secretRef,
            /** `json`: switchyard's own body; `slack`: a Slack-compatible incoming-webhook message with a button to the console. */
            format: z.enum(['json', 'slack']).default('json'),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({}),
    backup: backupSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const sites = Object.keys(c.sites);
    const hosts = Object.keys(c.hosts);
    const need = (kind: string, value: string, known: string[], path: (string | number)[]) => {
      if (!known.includes(value))
        ctx.addIssue({
          code: 'custom',
          path,
          message: `unknown ${kind} "${value}"; known: ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'}`,
        });
    };
    if (sites.length < 2) ctx.addIssue({ code: 'custom', path: ['sites'], message: `a cluster needs at least two sites, found ${sites.length}` });
    need('site', c.preferredPrimary, sites, ['preferredPrimary']);
    for (const [h, host] of Object.entries(c.hosts)) if (host.site !== undefined) need('site', host.site, sites, ['hosts', h, 'site']);
    const nodesBySite = new Map<string, string[]>();
    for (const [n, node] of Object.entries(c.postgres.nodes)) {
      need('site', node.site, sites, ['postgres', 'nodes', n, 'site']);
      need('host', node.sshHost, hosts, ['postgres', 'nodes', n, 'sshHost']);
      nodesBySite.set(node.site, [...(nodesBySite.get(node.site) ?? []), n]);
      if (node.ec2 && !c.ec2)
        ctx.addIssue({
          code: 'custom',
          path: ['postgres', 'nodes', n, 'ec2'],
          message: 'an EC2 selector needs the cluster\'s "ec2" section (region, endpoint)',
        });
      if (node.stonith) need('host', node.stonith.host, hosts, ['postgres', 'nodes', n, 'stonith', 'host']);
    }
    for (const s of sites) {
      const n = nodesBySite.get(s) ?? [];
      if (n.length !== 1)
        ctx.addIssue({
          code: 'custom',
          path: ['postgres', 'nodes'],
          message: `site "${s}" needs exactly one database node, found ${n.length}${n.length ? ` (${n.join(', ')})` : ''}`,
        });
    }
    for (const [s, site] of Object.entries(c.sites)) {
      if (site.maintenance) need('host', site.maintenance.host, hosts, ['sites', s, 'maintenance', 'host']);
      if (site.vantage) {
        need('host', site.vantage.host, hosts, ['sites', s, 'vantage', 'host']);
        const at = c.hosts[site.vantage.host]?.site;
        if (at !== undefined && at !== s)
          ctx.addIssue({
            code: 'custom',
            path: ['sites', s, 'vantage', 'host'],
            message: `the vantage host of site "${s}" must be at that site; "${site.vantage.host}" is at site "${at}"`,
          });
      }
      for (const [sv, svc] of Object.entries(site.services)) need('host', svc.host, hosts, ['sites', s, 'services', sv, 'host']);
      const hookNames = new Set<string>();
      site.hooks.afterPromote.forEach((hk, i) => {
        need('host', hk.host, hosts, ['sites', s, 'hooks', 'afterPromote', i, 'host']);
        if (hookNames.has(hk.name))
          ctx.addIssue({
            code: 'custom',
            path: ['sites', s, 'hooks', 'afterPromote', i, 'name'],
            message: `hook name "${hk.name}" is used twice at site "${s}"`,
          });
        hookNames.add(hk.name);
      });
    }
    if (c.failover.stopInstance) {
      if (!c.ec2)
        ctx.addIssue({
          code: 'custom',
          path: ['failover', 'stopInstance'],
          message: 'stopping the old primary\'s instance needs the cluster\'s "ec2" section (region, endpoint)',
        });
      for (const [n, node] of Object.entries(c.postgres.nodes))
        if (!node.ec2)
          ctx.addIssue({
            code: 'custom',
            path: ['postgres', 'nodes', n, 'ec2'],
            message: 'failover.stopInstance needs an EC2 selector on every database node',
          });
    }
    if (c.backup) {
      need('host', c.backup.host, hosts, ['backup', 'host']);
      for (const [set, fs] of Object.entries(c.backup.files ?? {})) need('host', fs.host, hosts, ['backup', 'files', set, 'host']);
      if (c.backup.maxArchiveLag !== undefined && !c.backup.archive)
        ctx.addIssue({ code: 'custom', path: ['backup', 'maxArchiveLag'], message: 'maxArchiveLag bounds the WAL archive: it needs backup.archive' });
      const copyTo = c.backup.ebs?.copyTo ?? [];
      if (copyTo.length && !c.ec2)
        ctx.addIssue({
          code: 'custom',
          path: ['backup', 'ebs', 'copyTo'],
          message: 'copying EBS snapshots needs the cluster\'s "ec2" section (region, endpoint)',
        });
      copyTo.forEach((t, i) => {
        if (c.ec2 && t.region === c.ec2.region)
          ctx.addIssue({
            code: 'custom',
            path: ['backup', 'ebs', 'copyTo', i, 'region'],
            message: `${t.region} is the cluster's own ec2.region: the snapshots are already there; copy to another region`,
          });
        if (copyTo.findIndex((o) => o.region === t.region) < i)
          ctx.addIssue({ code: 'custom', path: ['backup', 'ebs', 'copyTo', i, 'region'], message: `${t.region} is listed twice in backup.ebs.copyTo` });
      });
      if (c.backup.kinds.includes('ebs')) {
        if (!c.ec2)
          ctx.addIssue({ code: 'custom', path: ['backup', 'kinds'], message: 'EBS snapshot backups need the cluster\'s "ec2" section (region, endpoint)' });
        for (const [n, node] of Object.entries(c.postgres.nodes))
          if (!node.ec2)
            ctx.addIssue({
              code: 'custom',
              path: ['postgres', 'nodes', n, 'ec2'],
              message: 'EBS snapshot backups need an EC2 selector on every database node',
            });
      }
    }
    const driverNames = new Set<string>();
    c.traffic.forEach((d, i) => {
      if (driverNames.has(d.name)) ctx.addIssue({ code: 'custom', path: ['traffic', i, 'name'], message: `traffic driver name "${d.name}" is used twice` });
      driverNames.add(d.name);
      if (d.kind === 'haproxy') {
        for (const s of Object.keys(d.servers)) need('site', s, sites, ['traffic', i, 'servers', s]);
        for (const s of sites)
          if (!(s in d.servers)) ctx.addIssue({ code: 'custom', path: ['traffic', i, 'servers'], message: `no server named for site "${s}"` });
        if (d.stateFile) need('host', d.stateFile.host, hosts, ['traffic', i, 'stateFile', 'host']);
      }
      if (d.kind === 'command') need('host', d.host, hosts, ['traffic', i, 'host']);
      if (d.kind === 'elastic-ip' || d.kind === 'private-ip') {
        if (!c.ec2)
          ctx.addIssue({
            code: 'custom',
            path: ['traffic', i],
            message: `the ${d.kind} driver "${d.name}" needs the cluster's "ec2" section (region, endpoint)`,
          });
        for (const [n, node] of Object.entries(c.postgres.nodes))
          if (!node.ec2)
            ctx.addIssue({
              code: 'custom',
              path: ['postgres', 'nodes', n, 'ec2'],
              message: `the ${d.kind} driver "${d.name}" needs an EC2 selector on every database node`,
            });
      }
    });
  });
export type ClusterConfig = z.infer<typeof clusterSchema>;

export const topologySchema = z
  .object({
    version: z.literal(1, { error: 'expected version: 1' }),
    clusters: z.record(name, clusterSchema).refine((r) => Object.keys(r).length > 0, { error: 'expected at least one cluster' }),
    /** The people who decide at checkpoints (topology/operators.ts). */
    operators: operatorsSchema,
    console: consoleSchema.optional(),
    /** How the worker, the CLI and the console reach Temporal (TLS, API key) and encrypt payloads. */
    temporal: temporalSchema.optional(),
    /** The worker's Prometheus endpoint. */
    metrics: metricsSchema.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    for (const [cluster, c] of Object.entries(t.clusters))
      checkCheckpointPolicy(c.checkpoints, t.operators, t.console?.publicKey !== undefined, (path, message) =>
        ctx.addIssue({ code: 'custom', path: ['clusters', cluster, 'checkpoints', ...path], message }),
      );
  });
export type Topology = z.infer<typeof topologySchema>;
/** What a user writes, before defaults are applied. */
export type TopologyInput = z.input<typeof topologySchema>;
