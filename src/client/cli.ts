/**
 * The `switchyard` command. Every command finds the topology the same way: --config, else
 * SWITCHYARD_CONFIG, else ./switchyard.yaml (and, when none of those exists, the running local
 * sandbox's, with a note on stderr). Temporal is found with --address / TEMPORAL_ADDRESS
 * (default 127.0.0.1:7233) and --namespace / TEMPORAL_NAMESPACE (default "default").
 */
import { Command, Option } from 'commander';
import { ConfigError, loadTopology } from '../topology/load';
import { jsonSchema } from '../topology/json-schema';
import { operatorSigner, registerAccessCommands, registerConsoleCommand } from './cli-access';
import { signStart } from './signing';
import { registerWatchCommand } from './cli-watch';
import { archiveCommand, checkTargetTime } from './archive';
import { findConfig, loadSandbox, requireCluster, target, UsageError, type GlobalOpts } from './cli-common';
import { formatReadiness, runReadiness } from './readiness-report';
import { formatBackupList, runBackupList } from './backup-list';

export { UsageError } from './cli-common';
import { userInfo } from 'node:os';
import { follow, formatOutcome, formatStatus, runId, runStatus, startRunbook, withClient } from './runs';
import {
  checkCron,
  checkDuration,
  controlSchedule,
  describeBackupSchedule,
  formatScheduleView,
  listBackupSchedules,
  ScheduleInputError,
  upsertBackupSchedule,
} from './schedule';

export function buildProgram(): Command {
  const program = new Command('switchyard')
    .description('Failover, failback and backup runbooks for a two-site PostgreSQL stack, as durable Temporal workflows')
    .option('-c, --config <path>', 'topology file (default: $SWITCHYARD_CONFIG, else ./switchyard.yaml)')
    .option('--address <host:port>', 'Temporal frontend (default: $TEMPORAL_ADDRESS, else 127.0.0.1:7233)')
    .option('--namespace <name>', 'Temporal namespace (default: $TEMPORAL_NAMESPACE, else "default")')
    .option('--tls', "connect to Temporal with TLS (on with any TLS option, an API key, or the topology's temporal.tls; $TEMPORAL_TLS)")
    .option('--tls-ca-path <file>', "CA certificate the Temporal server's certificate is checked against ($TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
    .option('--tls-cert-path <file>', 'client certificate for mTLS ($TEMPORAL_TLS_CLIENT_CERT_PATH)')
    .option('--tls-key-path <file>', "client certificate's key for mTLS ($TEMPORAL_TLS_CLIENT_KEY_PATH)")
    .option('--tls-server-name <name>', "name in the server's certificate, when not the address's host ($TEMPORAL_TLS_SERVER_NAME)")
    .option('--api-key-file <file>', 'file holding a Temporal API key ($TEMPORAL_API_KEY holds the key itself)')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  // --- sandbox ------------------------------------------------------------------------------
  const sandbox = program.command('sandbox').description('the local stand-in for two data centres (all on loopback)');
  const sbOpts = (c: Command) =>
    c
      .option('--dir <path>', 'state directory (default: $SWITCHYARD_SANDBOX_DIR, else <tmp>/switchyard-sandbox)')
      .addOption(new Option('--net <n>', 'second octet of the 127.<n>.x.y addresses (0-255)').argParser((v) => parseNet(v)));
  sbOpts(sandbox.command('up').description('start Temporal, PostgreSQL primary + standby, sshd hosts, apps, services, the traffic front and the EC2 API'))
    .option('--json', 'print the status as JSON')
    .action(async (o: { dir?: string; net?: number; json?: boolean }) => {
      const { sandboxUp } = loadSandbox();
      const status = await sandboxUp({ dir: o.dir, net: o.net }, (line) => process.stderr.write(`${line}\n`));
      if (o.json) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else {
        process.stdout.write(formatSandbox(status));
        process.stdout.write(`\nPoint a shell at it:\n  export SWITCHYARD_CONFIG=${status.config}\n  export TEMPORAL_ADDRESS=${status.temporal.address}\n`);
      }
    });
  sbOpts(sandbox.command('down').description('stop everything the sandbox started and remove its directory')).action(
    async (o: { dir?: string; net?: number }) => {
      const { sandboxDown } = loadSandbox();
      await sandboxDown({ dir: o.dir, net: o.net }, (line) => process.stderr.write(`${line}\n`));
    },
  );
  sbOpts(sandbox.command('status').description('report every part of the sandbox'))
    .option('--json', 'print JSON')
    .action(async (o: { dir?: string; net?: number; json?: boolean }) => {
      const { sandboxStatus } = loadSandbox();
      const status = await sandboxStatus({ dir: o.dir, net: o.net });
      if (!status) {
        if (o.json) process.stdout.write('null\n');
        else process.stdout.write('no sandbox is running there\n');
        process.exitCode = 1;
        return;
      }
      process.stdout.write(o.json ? `${JSON.stringify(status, null, 2)}\n` : formatSandbox(status));
      if (status.parts.some((p) => p.state !== p.expected)) process.exitCode = 1;
    });

  // --- readiness ------------------------------------------------------------------------------
  program
    .command('check <cluster>')
    .description('readiness: primary writable, standby streaming and its lag, hosts, services, maintenance, traffic, EC2 (exit 0 only when ready)')
    .option('--json', 'print the report as JSON')
    .action(async (cluster: string, o: { json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      requireCluster(configPath, cluster);
      const report = await runReadiness({ cluster, configPath, target: await target(cmd) });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatReadiness(report));
      process.exitCode = report.ready ? 0 : 1;
    });

  // --- runs: decisions and progress ------------------------------------------------------------
  registerAccessCommands(program);
  registerConsoleCommand(program);
  registerWatchCommand(program, defaultUser);
  program
    .command('status <workflowId>')
    .description('a run\'s step log and the checkpoint it waits at (the query "progress")')
    .option('--json', 'print JSON')
    .option('--wait', 'follow it until it closes; exit 0 only when it completed')
    .action(async (workflowId: string, o: { json?: boolean; wait?: boolean }, cmd: Command) => {
      await withClient(await target(cmd), async (client) => {
        const r = o.wait ? await follow(client, workflowId, (line) => !o.json && process.stdout.write(`${line}\n`)) : await runStatus(client, workflowId);
        if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        else if (o.wait) process.stdout.write(formatOutcome(r));
        else process.stdout.write(formatStatus(r));
        if (o.wait && !r.succeeded) process.exitCode = 1;
      });
    });

  // --- runbooks ---------------------------------------------------------------------------------
  program
    .command('failover <cluster>')
    .description('unplanned failover: fence the old primary (or ask at "old-primary-dead"), gate data loss, promote the standby, move traffic')
    .option('--reason <text>', 'why (step log and notifications)')
    .option('--to <site>', 'the site to promote (default: the one standby)')
    .option('--dry-run', 'run only the read-only checks and print the plan; change nothing')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--key <file>', 'sign the start with your own Ed25519 key: the run then knows you started it (two-person rule)')
    .option('--id <workflowId>', 'workflow id (default: failover-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed its job')
    .option('--json', 'print JSON (with --wait or --dry-run: the final status and result)')
    .action(
      async (
        cluster: string,
        o: { reason?: string; to?: string; dryRun?: boolean; as?: string; id?: string; wait?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        requireCluster(configPath, cluster);
        const input = {
          cluster,
          requestedBy: o.as ?? defaultUser(),
          ...(o.reason ? { reason: o.reason } : {}),
          ...(o.to ? { to: o.to } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
        };
        await startAndReport(cmd, 'failover', input, o.id ?? runId(o.dryRun ? 'failover-dry-run' : 'failover', cluster), {
          wait: o.wait || o.dryRun === true,
          json: o.json === true,
        });
      },
    );

  program
    .command('rejoin <cluster>')
    .description('make a former primary a standby of the current primary again: pg_rewind, or pg_basebackup into a fresh directory (the old one moved aside)')
    .requiredOption('--node <node>', 'the database node to rejoin')
    .addOption(new Option('--method <method>', 'how to rebuild it').choices(['auto', 'rewind', 'basebackup']).default('auto'))
    .option('--dry-run', 'print the plan; change nothing')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--id <workflowId>', 'workflow id (default: rejoin-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed its job')
    .option('--json', 'print JSON')
    .action(
      async (
        cluster: string,
        o: { node: string; method: string; dryRun?: boolean; as?: string; id?: string; wait?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        const c = requireCluster(configPath, cluster);
        if (!(o.node in c.postgres.nodes))
          throw new UsageError(`--node: unknown database node "${o.node}" in cluster ${cluster}; known: ${Object.keys(c.postgres.nodes).join(', ')}`);
        const input = { cluster, node: o.node, method: o.method, requestedBy: o.as ?? defaultUser(), ...(o.dryRun ? { dryRun: true } : {}) };
        await startAndReport(cmd, 'rejoin', input, o.id ?? runId(o.dryRun ? 'rejoin-dry-run' : 'rejoin', cluster), {
          wait: o.wait || o.dryRun === true,
          json: o.json === true,
        });
      },
    );

  program
    .command('switchover <cluster>')
    .description(
      'planned move with zero data loss: stop the primary cleanly, let the target replay to its shutdown checkpoint, promote, the old primary follows',
    )
    .requiredOption('--to <site>', 'the site to make primary')
    .option('--dry-run', 'print the plan; change nothing')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--key <file>', 'sign the start with your own Ed25519 key: the run then knows you started it (two-person rule)')
    .option('--id <workflowId>', 'workflow id (default: switchover-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed its job')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { to: string; dryRun?: boolean; as?: string; id?: string; wait?: boolean; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const c = requireCluster(configPath, cluster);
      if (!(o.to in c.sites)) throw new UsageError(`--to: unknown site "${o.to}" in cluster ${cluster}; known: ${Object.keys(c.sites).join(', ')}`);
      const input = { cluster, to: o.to, requestedBy: o.as ?? defaultUser(), ...(o.dryRun ? { dryRun: true } : {}) };
      await startAndReport(cmd, 'switchover', input, o.id ?? runId(o.dryRun ? 'switchover-dry-run' : 'switchover', cluster), {
        wait: o.wait || o.dryRun === true,
        json: o.json === true,
      });
    });

  program
    .command('failback <cluster>')
    .description("return to the original layout: rejoin the preferred site's former primary if needed, then switch over back to it")
    .option('--dry-run', 'print the plan; change nothing')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--id <workflowId>', 'workflow id (default: failback-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed its job')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { dryRun?: boolean; as?: string; id?: string; wait?: boolean; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      requireCluster(configPath, cluster);
      const input = { cluster, requestedBy: o.as ?? defaultUser(), ...(o.dryRun ? { dryRun: true } : {}) };
      await startAndReport(cmd, 'failback', input, o.id ?? runId(o.dryRun ? 'failback-dry-run' : 'failback', cluster), {
        wait: o.wait || o.dryRun === true,
        json: o.json === true,
      });
    });

  // --- backups --------------------------------------------------------------------------------------
  const kindsOpt = () =>
    new Option('--kinds <kinds>', "what to make: pg (base backup), ebs (snapshots), or pg,ebs (default: the topology's backup.kinds)").argParser(parseKinds);
  const backupCommand = program
    .command('backup <cluster>')
    .description("back up now: EBS snapshots of the source node's volumes and/or a base backup on the backup server, then retention")
    .addOption(kindsOpt())
    .option('--drill', 'follow it with a drill that proves the base backup restores')
    .option('--dry-run', 'choose the source and print what would be made and what retention would delete; change nothing')
    .option('--as <name>', 'who starts it (default: $SWITCHYARD_USER, else your login name)')
    .option('--id <workflowId>', 'workflow id, also the backup id (default: backup-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed')
    .option('--json', 'print JSON')
    .action(
      async (
        cluster: string,
        o: { kinds?: ('pg' | 'ebs')[]; drill?: boolean; dryRun?: boolean; as?: string; id?: string; wait?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        const c = requireCluster(configPath, cluster);
        if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath} (backup server host, root, binDir)`);
        const input = {
          cluster,
          requestedBy: o.as ?? defaultUser(),
          ...(o.kinds ? { kinds: o.kinds } : {}),
          ...(o.drill ? { drill: true } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
        };
        await startAndReport(cmd, 'backup', input, o.id ?? runId(o.dryRun ? 'backup-dry-run' : 'backup', cluster), {
          wait: o.wait === true || o.dryRun === true,
          json: o.json === true,
        });
      },
    );
  // `backup list <cluster>`: commander tries the subcommand first, so `backup <cluster>` is unchanged for every cluster not named "list".
  backupCommand
    .command('list <cluster>')
    .description('every backup of the cluster: its base backup (where it is, proven or not), EBS snapshots and file sets (read-only)')
    .option('--as <name>', 'who asks')
    .option('--id <workflowId>', 'workflow id (default: backup-list-<cluster>-<time>-<random>)')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { as?: string; id?: string; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const c = requireCluster(configPath, cluster);
      if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath}`);
      const r = await runBackupList(await target(cmd), cluster, o.as ?? defaultUser(), o.id);
      process.stdout.write(o.json ? `${JSON.stringify(r.backups, null, 2)}\n` : formatBackupList(r));
    });
  program
    .command('retention <cluster>')
    .description(
      'apply backup retention alone: keep the last N and anything younger than the maximum age, never the newest proven-restorable backup; ' +
        '--dry-run lists every backup and what would happen to it',
    )
    .option('--dry-run', 'list the backups and the decision for each; delete nothing')
    .option('--keep-last <n>', 'override backup.keepLast', parsePositive('--keep-last'))
    .option('--max-age <duration>', 'override backup.maxAge (e.g. 14d)')
    .option('--as <name>', 'who starts it')
    .option('--id <workflowId>', 'workflow id')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { dryRun?: boolean; keepLast?: number; maxAge?: string; as?: string; id?: string; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const c = requireCluster(configPath, cluster);
      if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath}`);
      const input = {
        cluster,
        requestedBy: o.as ?? defaultUser(),
        ...(o.dryRun ? { dryRun: true } : {}),
        ...(o.keepLast ? { keepLast: o.keepLast } : {}),
        ...(o.maxAge ? { maxAge: checkDuration('--max-age', o.maxAge) } : {}),
      };
      await startAndReport(cmd, 'backupRetention', input, o.id ?? runId(o.dryRun ? 'retention-dry-run' : 'retention', cluster), {
        wait: true,
        json: o.json === true,
      });
    });
  program
    .command('drill <cluster>')
    .description(
      'prove a backup restores: restore the base backup into a scratch copy on the backup server, run the verification queries, record RTO and RPO, remove it',
    )
    .option('--from <backupId>', 'the backup to drill (default: the newest complete base backup; with --target-time, the newest that finished before it)')
    .option('--target-time <iso>', 'point in time: replay the WAL archive (backup.archive) up to this time, e.g. 2026-12-04T03:15:00Z')
    .option('--as <name>', 'who starts it')
    .option('--id <workflowId>', 'workflow id (default: drill-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when the backup restored')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { from?: string; targetTime?: string; as?: string; id?: string; wait?: boolean; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const c = requireCluster(configPath, cluster);
      if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath}`);
      const targetTime = o.targetTime === undefined ? undefined : checkTargetTime(o.targetTime);
      if (targetTime && !c.backup.archive) throw new UsageError(`--target-time needs WAL archiving: cluster ${cluster} has no backup.archive in ${configPath}`);
      const input = { cluster, requestedBy: o.as ?? defaultUser(), ...(o.from ? { from: o.from } : {}), ...(targetTime ? { targetTime } : {}) };
      await startAndReport(cmd, 'drill', input, o.id ?? runId('drill', cluster), { wait: o.wait === true, json: o.json === true });
    });
  program
    .command('archive <cluster>')
    .description(
      'continuous WAL archiving for point-in-time recovery (backup.archive): start the walArchive workflow that keeps pg_receivewal ' +
        'streaming from the primary into the backup host (and the store), following a new primary after a failover; --stop ends it',
    )
    .option('--stop', 'stop archiving (the replication slot stays, so nothing is lost before it starts again)')
    .option('--as <name>', 'who starts or stops it')
    .option('--json', 'print JSON')
    .action(async (cluster: string, o: { stop?: boolean; as?: string; json?: boolean }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const c = requireCluster(configPath, cluster);
      if (!c.backup?.archive) throw new UsageError(`cluster ${cluster} has no backup.archive in ${configPath}: WAL archiving is not configured`);
      await archiveCommand(cmd, cluster, { stop: o.stop === true, by: o.as ?? defaultUser(), json: o.json === true });
    });
  program
    .command('restore <cluster>')
    .description(
      'restore a backup: a base backup onto a database node (old data directory kept aside), or EBS snapshots as a new instance with the recorded private IP',
    )
    .option('--from <backupId>', 'the backup id (with --target-time: default the newest base backup that finished before it)')
    .option(
      '--target-time <iso>',
      'pg: a point in time, e.g. 2026-12-04T03:15:00Z: replay the WAL archive (backup.archive) from the backup up to it, then promote',
    )
    .requiredOption('--target <node>', 'the database node restored onto, or whose instance is recreated; with --files, the host the files go back onto')
    .option(
      '--files <set>',
      'restore this file set (backup.files) of the backup onto --target instead of the database: what is there is moved aside, never deleted',
    )
    .option('--path <path>', 'with --files: only this path of the set and what is under it (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .addOption(new Option('--kind <kind>', 'which part of the backup (default: pg when it has a base backup)').choices(['pg', 'ebs']))
    .option('--region <region>', "ebs: restore in this region from the backup's copies there (one of backup.ebs.copyTo; default the cluster's ec2.region)")
    .option('--dry-run', 'print the plan; change nothing')
    .option('--as <name>', 'who starts it')
    .option('--key <file>', 'sign the start with your own Ed25519 key: the run then knows you started it (two-person rule)')
    .option('--id <workflowId>', 'workflow id (default: restore-<cluster>-<time>-<random>)')
    .option('--wait', 'follow the run until it closes; exit 0 only when it completed')
    .option('--json', 'print JSON')
    .action(
      async (
        cluster: string,
        o: {
          from?: string;
          targetTime?: string;
          target: string;
          kind?: 'pg' | 'ebs';
          region?: string;
          files?: string;
          path?: string[];
          dryRun?: boolean;
          as?: string;
          id?: string;
          wait?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        const c = requireCluster(configPath, cluster);
        if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath}`);
        if (o.from === undefined && (o.targetTime === undefined || o.files !== undefined))
          throw new UsageError('--from: which backup? (a backup id; only a point-in-time restore with --target-time may leave it out)');
        if (o.files !== undefined) {
          if (o.targetTime !== undefined) throw new UsageError('--target-time restores the database to a point in time: it does not go with --files');
          const sets = Object.keys(c.backup.files ?? {});
          if (!sets.includes(o.files))
            throw new UsageError(`--files: cluster ${cluster} has no file set "${o.files}" in backup.files; known: ${sets.join(', ') || 'none'}`);
          if (!(o.target in c.hosts))
            throw new UsageError(`--target: unknown host "${o.target}" in cluster ${cluster}; known: ${Object.keys(c.hosts).join(', ')}`);
          if (o.kind !== undefined || o.region !== undefined)
            throw new UsageError('--files restores a file set onto a host: it does not go with --kind or --region');
          const input = {
            cluster,
            from: o.from,
            target: o.target,
            files: o.files,
            requestedBy: o.as ?? defaultUser(),
            ...(o.path?.length ? { paths: o.path } : {}),
            ...(o.dryRun ? { dryRun: true } : {}),
          };
          await startAndReport(cmd, 'restore', input, o.id ?? runId(o.dryRun ? 'restore-dry-run' : 'restore', cluster), {
            wait: o.wait || o.dryRun === true,
            json: o.json === true,
          });
          return;
        }
        if (o.path !== undefined) throw new UsageError('--path names paths of a file set: it goes with --files');
        if (!(o.target in c.postgres.nodes))
          throw new UsageError(`--target: unknown database node "${o.target}" in cluster ${cluster}; known: ${Object.keys(c.postgres.nodes).join(', ')}`);
        if (o.region !== undefined) {
          const regions = [c.ec2?.region, ...(c.backup.ebs?.copyTo ?? []).map((t) => t.region)].filter((r): r is string => !!r);
          if (!regions.includes(o.region))
            throw new UsageError(`--region: ${o.region} is not a region cluster ${cluster} has EBS snapshots in; known: ${regions.join(', ') || 'none'}`);
          if (o.kind === 'pg') throw new UsageError('--region restores EBS snapshot copies: it does not go with --kind pg');
        }
        const targetTime = o.targetTime === undefined ? undefined : checkTargetTime(o.targetTime);
        if (targetTime !== undefined) {
          if (o.kind === 'ebs' || o.region !== undefined)
            throw new UsageError('--target-time replays WAL onto a base backup: it does not go with --kind ebs or --region');
          if (!c.backup.archive) throw new UsageError(`--target-time needs WAL archiving: cluster ${cluster} has no backup.archive in ${configPath}`);
        }
        const input = {
          cluster,
          ...(o.from !== undefined ? { from: o.from } : {}),
          ...(targetTime !== undefined ? { targetTime, kind: 'pg' as const } : {}),
          target: o.target,
          requestedBy: o.as ?? defaultUser(),
          ...(o.kind ? { kind: o.kind } : {}),
          ...(o.region && o.region !== c.ec2?.region ? { region: o.region } : {}),
          ...(o.dryRun ? { dryRun: true } : {}),
        };
        await startAndReport(cmd, 'restore', input, o.id ?? runId(o.dryRun ? 'restore-dry-run' : 'restore', cluster), {
          wait: o.wait || o.dryRun === true,
          json: o.json === true,
        });
      },
    );

  // --- schedules -------------------------------------------------------------------------------------
  const schedule = program.command('schedule').description('backups on Temporal Schedules (one per cluster, also in the Temporal UI under Schedules)');
  schedule
    .command('backup <cluster>')
    .description("create or update the cluster's backup schedule (overlap: skip; missed runs within the catch-up window are taken)")
    .requiredOption('--cron <expr>', 'when, as five cron fields in UTC, e.g. "0 */6 * * *", or @daily / "@every 6h"')
    .option('--keep-last <n>', 'retention: keep the last N backups (default: backup.keepLast)', parsePositive('--keep-last'))
    .option('--max-age <duration>', 'retention: keep anything younger than this (default: backup.maxAge), e.g. 14d')
    .option('--drill', 'follow each backup with a drill')
    .addOption(kindsOpt())
    .option('--catchup-window <duration>', 'how far back missed runs are still taken', '1h')
    .option('--as <name>', 'who sets it')
    .option('--json', 'print JSON')
    .action(
      async (
        cluster: string,
        o: { cron: string; keepLast?: number; maxAge?: string; drill?: boolean; kinds?: ('pg' | 'ebs')[]; catchupWindow: string; as?: string; json?: boolean },
        cmd: Command,
      ) => {
        const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
        const c = requireCluster(configPath, cluster);
        if (!c.backup) throw new UsageError(`cluster ${cluster} has no "backup" section in ${configPath}`);
        const opts = {
          cluster,
          cron: o.cron,
          keepLast: o.keepLast,
          maxAge: o.maxAge === undefined ? undefined : checkDuration('--max-age', o.maxAge),
          drill: o.drill,
          kinds: o.kinds,
          catchupWindow: checkDuration('--catchup-window', o.catchupWindow),
          createdBy: o.as ?? defaultUser(),
        };
        checkCron(o.cron);
        await withClient(await target(cmd), async (client) => {
          const what = await upsertBackupSchedule(client, opts);
          const view = await describeBackupSchedule(client, cluster);
          process.stdout.write(
            o.json ? `${JSON.stringify({ [what]: view.scheduleId, schedule: view }, null, 2)}\n` : `${what} ${view.scheduleId}\n${formatScheduleView(view)}`,
          );
        });
      },
    );
  schedule
    .command('list')
    .description('the backup schedules')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withClient(await target(cmd), async (client) => {
        const list = await listBackupSchedules(client);
        if (o.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        else
          process.stdout.write(
            list.length
              ? list.map((s) => `${s.scheduleId}  ${s.paused ? 'PAUSED ' : 'active '} next ${s.nextRuns[0] ?? 'none'}`).join('\n') + '\n'
              : 'no backup schedules (create one: switchyard schedule backup <cluster> --cron "0 */6 * * *")\n',
          );
      });
    });
  for (const what of ['describe', 'pause', 'resume', 'trigger', 'delete'] as const) {
    schedule
      .command(`${what} <cluster>`)
      .description(
        {
          describe: 'the schedule, its next and recent runs',
          pause: 'stop starting backups until resumed',
          resume: 'start backups again',
          trigger: 'start a backup now (skipped while one is still running)',
          delete: 'remove the schedule (backups already made stay)',
        }[what],
      )
      .option('--as <name>', "who does it (recorded in the schedule's note)")
      .option('--json', 'print JSON')
      .action(async (cluster: string, o: { as?: string; json?: boolean }, cmd: Command) => {
        await withClient(await target(cmd), async (client) => {
          const view =
            what === 'describe' ? await describeBackupSchedule(client, cluster) : await controlSchedule(client, cluster, what, o.as ?? defaultUser());
          if (o.json) process.stdout.write(`${JSON.stringify(view ?? { deleted: cluster }, null, 2)}\n`);
          else process.stdout.write(view ? formatScheduleView(view) : `deleted the backup schedule of ${cluster}\n`);
        });
      });
  }

  // --- worker -----------------------------------------------------------------------------------
  program
    .command('worker')
    .description('run a worker on task queue "switchyard" (JSON logs on stdout; SIGTERM stops it cleanly, SIGHUP re-reads the topology)')
    .option(
      '--metrics <host:port>',
      "serve Prometheus metrics at http://<host:port>/metrics (default: $SWITCHYARD_METRICS, else the topology's metrics.listen, else none)",
    )
    .action(async (o: { metrics?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const configPath = await findConfig(g.config);
      // The worker SDK and the activities load only for this command.
      const { runWorker, workerSettings } = require('../worker') as typeof import('../worker');
      const settings = await workerSettings(configPath, { ...g, metrics: o.metrics }).catch((err: Error) => {
        throw new UsageError(`${err.message} (topology ${configPath})`);
      });
      await runWorker({ configPath, ...settings });
    });

  // --- codec server -------------------------------------------------------------------------------
  program
    .command('codec-server')
    .description("decrypt and encrypt payloads for the Temporal Web UI and `temporal --codec-endpoint` (keys: the topology's temporal.codec)")
    .option('--listen <host:port>', "where it listens (default: the topology's temporal.codec.server.listen, else 127.0.0.1:8888)")
    .option('--ui-origin <origin...>', "the Web UI's origin(s) the browser may call it from (default: temporal.codec.server.uiOrigins)")
    .action(async (o: { listen?: string; uiOrigin?: string[] }, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const { runCodecServer } = require('./codec-command') as typeof import('./codec-command');
      await runCodecServer({ configPath, listen: o.listen, uiOrigins: o.uiOrigin });
    });

  // --- config -----------------------------------------------------------------------------------
  const config = program.command('config').description('the topology file');
  config
    .command('validate')
    .description('check the topology file and print its clusters')
    .action(async (_o: unknown, cmd: Command) => {
      const configPath = await findConfig(cmd.optsWithGlobals<GlobalOpts>().config);
      const top = loadTopology(configPath);
      for (const [name, c] of Object.entries(top.clusters)) {
        process.stdout.write(
          `${configPath}: cluster ${name}: sites ${Object.keys(c.sites).join(', ')}; nodes ${Object.keys(c.postgres.nodes).join(', ')}; ` +
            `traffic ${c.traffic.map((t) => `${t.name} (${t.kind})`).join(', ') || 'none'}\n`,
        );
      }
    });
  config
    .command('schema')
    .description('print the JSON Schema of the topology file (for editors)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(jsonSchema(), null, 2)}\n`);
    });

  // --- demo ---------------------------------------------------------------------------------------
  program
    .command('demo')
    .description('the main job, end to end on a fresh sandbox (npm run demo)')
    .action(async () => {
      const { runDemo } = require('./demo') as typeof import('./demo');
      await runDemo();
    });

  return program;
}

function defaultUser(): string {
  const env = process.env.SWITCHYARD_USER?.trim();
  if (env) return env;
  try {
    return userInfo().username;
  } catch {
    throw new UsageError('cannot tell who you are: pass --as <name> or set SWITCHYARD_USER');
  }
}

/** Start a runbook; print its id, or follow it to the end (exit 0 only when it did its job). */
async function startAndReport(cmd: Command, type: string, input: object, workflowId: string, o: { wait: boolean; json: boolean }): Promise<void> {
  const t = await target(cmd);
  const keyFile = cmd.opts<{ key?: string }>().key;
  const run = input as { cluster: string; requestedBy: string };
  const signed = keyFile
    ? signStart(run, { workflowId, workflowType: type }, operatorSigner(keyFile, run.requestedBy).key, `operator:${run.requestedBy.trim().toLowerCase()}`)
    : input;
  await withClient(t, async (client) => {
    const id = await startRunbook(client, t.namespace, type, signed, { workflowId });
    if (!o.wait) {
      process.stdout.write(o.json ? `${JSON.stringify({ workflowId: id })}\n` : `started ${type} ${id}\nfollow it:  switchyard status ${id} --wait\n`);
      return;
    }
    if (!o.json) process.stdout.write(`started ${type} ${id}\n`);
    const r = await follow(client, id, (line) => !o.json && process.stdout.write(`${line}\n`));
    if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else process.stdout.write(formatOutcome(r));
    if (!r.succeeded) process.exitCode = 1;
  });
}

function parseKinds(v: string): ('pg' | 'ebs')[] {
  const kinds = v
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (!kinds.length || kinds.some((k) => k !== 'pg' && k !== 'ebs')) throw new UsageError(`--kinds: expected pg, ebs or pg,ebs; got "${v}"`);
  return [...new Set(kinds)] as ('pg' | 'ebs')[];
}

function parsePositive(flag: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: expected an integer >= 1, got "${v}"`);
    return n;
  };
}

function parseNet(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new UsageError(`--net: expected an integer from 0 to 255, got "${v}"`);
  return n;
}

export function formatSandbox(status: {
  config: string;
  temporal: { address: string; ui: string };
  parts: { name: string; kind: string; host: string; port: number; pid: number | null; state: string; expected: string; detail?: string }[];
}): string {
  const w = Math.max(...status.parts.map((p) => p.name.length));
  return (
    `temporal  ${status.temporal.address}   UI ${status.temporal.ui}\n` +
    `topology  ${status.config}\n` +
    status.parts
      .map(
        (p) =>
          `  ${p.state === p.expected ? (p.state === 'running' ? 'up  ' : 'off ') : p.state === 'running' ? 'UP? ' : 'DOWN'}  ${p.name.padEnd(w)}  ` +
          `${p.kind.padEnd(8)} ${p.host}:${p.port}${p.pid ? `  pid ${p.pid}` : ''}${p.detail ? `  ${p.detail}` : ''}`,
      )
      .join('\n') +
    '\n'
  );
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError || err instanceof ScheduleInputError) {
      process.stderr.write(`switchyard: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`switchyard: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.SWITCHYARD_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = process.exitCode || 1;
  }
}
