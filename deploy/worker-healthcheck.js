#!/usr/bin/env node
'use strict';
/**
 * The worker container's HEALTHCHECK (see Dockerfile): exits 0 when Temporal sees this host
 * polling the task queue for both workflow and activity tasks within the last few minutes, 1
 * otherwise, with one line saying why. "This host" is matched by the container's hostname inside
 * the pollers' identities (the SDK's default identity is `<pid>@<hostname>`).
 *
 * Environment: TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE (default "default"),
 * SWITCHYARD_TASK_QUEUE (default "switchyard"), SWITCHYARD_HEALTH_MAX_IDLE_SECONDS (default 180).
 * Plain JavaScript so that it starts fast (no tsx) and needs only @temporalio/client.
 */
const os = require('node:os');
const { Connection } = require('@temporalio/client');

const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPES = { workflow: 1, activity: 2 };

async function check() {
  const address = process.env.TEMPORAL_ADDRESS || '127.0.0.1:7233';
  const namespace = process.env.TEMPORAL_NAMESPACE || 'default';
  const taskQueue = process.env.SWITCHYARD_TASK_QUEUE || 'switchyard';
  const maxIdle = Number(process.env.SWITCHYARD_HEALTH_MAX_IDLE_SECONDS || 180);
  const host = os.hostname();

  const connection = await Connection.connect({ address, connectTimeout: 5000 });
  try {
    const problems = [];
    for (const [kind, taskQueueType] of Object.entries(TASK_QUEUE_TYPES)) {
      const res = await connection.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
        taskQueueType,
      });
      const now = Date.now() / 1000;
      const mine = (res.pollers || []).filter((p) => String(p.identity || '').includes(host));
      const fresh = mine.filter((p) => p.lastAccessTime && now - Number(p.lastAccessTime.seconds) <= maxIdle);
      if (fresh.length === 0)
        problems.push(
          mine.length === 0
            ? `no ${kind} poller from host ${host} on task queue ${taskQueue} (namespace ${namespace})`
            : `${kind} poller from host ${host} idle for more than ${maxIdle}s`,
        );
    }
    return problems;
  } finally {
    await connection.close();
  }
}

check().then(
  (problems) => {
    if (problems.length === 0) {
      process.stdout.write('healthy: polling workflow and activity tasks\n');
      process.exit(0);
    }
    process.stdout.write(`unhealthy: ${problems.join('; ')}\n`);
    process.exit(1);
  },
  (err) => {
    process.stdout.write(`unhealthy: cannot ask Temporal: ${err && err.message ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
