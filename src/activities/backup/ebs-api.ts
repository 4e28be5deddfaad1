/**
 * How the EBS activities talk to EC2: a client per call that counts its API calls and the SDK's
 * retries (reported in every result) and heartbeats on every attempt, and the snapshot lookups
 * by tag that snapshots, lists, deletes and restores share.
 */
import { DescribeSnapshotsCommand, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import { EBS_TAGS, type Ec2ApiUse, type EbsSnapshotInfo } from '../../contract/backup';
import { heartbeat } from '../activity-context';
import type { Call, Runtime } from '../runtime';
import type { ClusterConfig } from '../../topology/schema';
import { withEc2 } from '../ec2';
import { configError } from '../resolver';
import { snapshotInfo } from './ebs-tags';

/** Polling of the waits (snapshots, image). */
export const POLL_MS = 2_000;

/** "EC2 API: 5 calls, 3 retries" (retries only when there were any). */
export function apiText(api: Ec2ApiUse): string {
  const calls = `${api.calls} call${api.calls === 1 ? '' : 's'}`;
  return api.retries > 0 ? `EC2 API: ${calls}, ${api.retries} retr${api.retries === 1 ? 'y' : 'ies'}` : `EC2 API: ${calls}`;
}

/** Counts every send() of a client and the SDK's retries in it, from $metadata.attempts. */
export class ApiCounter {
  calls = 0;
  retries = 0;

  attach(ec2: EC2Client): void {
    ec2.middlewareStack.add(
      (next) => async (args) => {
        try {
          const out = await next(args);
          this.count((out.output as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          return out;
        } catch (err) {
          this.count((err as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          throw err;
        }
      },
      { step: 'initialize', name: 'switchyardApiCount', override: true },
    );
    // Inside the SDK's retry loop: a heartbeat per attempt, so a call retried for long (throttling
    // backs off up to 20 s a time) keeps the activity alive.
    ec2.middlewareStack.add(
      (next) => async (args) => {
        heartbeat();
        return next(args);
      },
      { step: 'deserialize', name: 'switchyardAttemptHeartbeat', override: true },
    );
  }

  private count(attempts: number | undefined): void {
    this.calls += 1;
    this.retries += Math.max(0, (attempts ?? 1) - 1);
  }

  get use(): Ec2ApiUse {
    return { calls: this.calls, retries: this.retries };
  }
}

/** A client for the cluster with a call counter, its sockets always released. */
export async function withCountedEc2<T>(rt: Runtime, call: Call, cluster: string, fn: (ec2: EC2Client, api: ApiCounter) => Promise<T>): Promise<T> {
  return withCountedEc2In(rt, call, cluster, undefined, fn);
}

/** The same in `region` (same endpoint and credentials; the cluster's ec2.region when undefined). */
export async function withCountedEc2In<T>(
  rt: Runtime,
  call: Call,
  cluster: string,
  region: string | undefined,
  fn: (ec2: EC2Client, api: ApiCounter) => Promise<T>,
): Promise<T> {
  return withEc2(
    rt,
    call,
    cluster,
    (ec2) => {
      const api = new ApiCounter();
      api.attach(ec2);
      return fn(ec2, api);
    },
    region,
  );
}

export interface EbsRegion {
  /** Where the activity works. */
  region: string;
  /** The cluster's own ec2.region, where the snapshots are taken. */
  sourceRegion: string;
  /** The backup.ebs.copyTo entry of `region`; null in the source region. */
  copy: NonNullable<NonNullable<ClusterConfig['backup']>['ebs']>['copyTo'][number] | null;
}

/**
 * The region an EBS activity was asked to work in: the cluster's ec2.region when none (or that
 * one) is named, else one of backup.ebs.copyTo; any other is a ConfigError naming the choices.
 */
export function ebsRegion(call: Call, cluster: string, region: unknown): EbsRegion {
  const c = call.top.cluster(cluster);
  if (!c.ec2) throw configError(`cluster "${cluster}" has no "ec2" section (region, endpoint, credentials)`);
  const sourceRegion = c.ec2.region;
  if (region === undefined || region === null || region === sourceRegion) return { region: sourceRegion, sourceRegion, copy: null };
  const copyTo = c.backup?.ebs?.copyTo ?? [];
  const copy = typeof region === 'string' ? copyTo.find((t) => t.region === region) : undefined;
  if (!copy) {
    throw configError(
      `region ${JSON.stringify(region)} is neither cluster "${cluster}"'s ec2.region (${sourceRegion}) nor one of its backup.ebs.copyTo regions ` +
        `(${copyTo.map((t) => t.region).join(', ') || 'none configured'})`,
    );
  }
  return { region: copy.region, sourceRegion, copy };
}

/** " in eu-central-1" for a copy region, "" for the source region. */
export function inRegion(r: EbsRegion): string {
  return r.copy ? ` in ${r.region}` : '';
}

export const tagFilter = (key: string, value: string): Filter => ({ Name: `tag:${key}`, Values: [value] });

/** Snapshots this account owns with the given tags, every page. */
export async function describeSnapshots(ec2: EC2Client, tags: Record<string, string>): Promise<EbsSnapshotInfo[]> {
  const out: EbsSnapshotInfo[] = [];
  let token: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: Object.entries(tags).map(([k, v]) => tagFilter(k, v)), MaxResults: 1000, NextToken: token }),
    );
    out.push(...(page.Snapshots ?? []).map(snapshotInfo));
    token = page.NextToken;
    heartbeat();
  } while (token);
  return out;
}

/** The snapshots of one backup of the cluster. */
export function backupSnapshots(ec2: EC2Client, cluster: string, backupId: string): Promise<EbsSnapshotInfo[]> {
  return describeSnapshots(ec2, { [EBS_TAGS.cluster]: cluster, [EBS_TAGS.backupId]: backupId });
}
