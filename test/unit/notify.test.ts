import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createActivities } from '../../src/activities';
import type { Topology, TopologyInput } from '../../src/topology/schema';
import { buildTopology } from '../support/topology';

const TOKEN = 'T0KEN-abc123-secret';
let server: Server;
let port: number;
const received: { path: string; body: unknown; type: string | undefined }[] = [];
let answer = 200;

function top(webhook: TopologyInput['clusters'][string]['notify']): Topology {
  return buildTopology({ notify: webhook });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.setEncoding('utf8').on('data', (d: string) => (s += d));
    req.on('end', () => resolve(s));
  });
}

before(async () => {
  server = createServer(async (req, res) => {
    received.push({ path: req.url ?? '', body: JSON.parse(await readBody(req)), type: req.headers['content-type'] });
    res.statusCode = answer;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  await new Promise((r) => server.close(r));
});

describe('notify', () => {
  const url = () => `http://127.0.0.1:${port}/hooks/${TOKEN}`;

  it('POSTs JSON to the webhook named by the secret reference', async () => {
    received.length = 0;
    answer = 200;
    const act = createActivities({
      topology: () => top({ webhook: { url: { env: 'HOOK' } } }),
      secret: async () => url(),
      now: () => new Date('2026-01-02T03:04:05Z'),
    });
    const r = await act.notify({ cluster: 'main', event: 'failover.started', text: 'dc2 takes over', fields: { from: 'dc1', to: 'dc2' } });
    assert.deepEqual(r, { configured: true, delivered: true, httpStatus: 200, detail: 'webhook answered HTTP 200' });
    assert.equal(received.length, 1);
    assert.equal(received[0].path, `/hooks/${TOKEN}`);
    assert.equal(received[0].type, 'application/json');
    assert.deepEqual(received[0].body, {
      text: '[main] failover.started: dc2 takes over',
      cluster: 'main',
      event: 'failover.started',
      message: 'dc2 takes over',
      fields: { from: 'dc1', to: 'dc2' },
      link: null,
      at: '2026-01-02T03:04:05.000Z',
    });
  });

  it('links to the console page of the checkpoint or the run; the Slack format carries a button to it', async () => {
    received.length = 0;
    const withConsole = (format?: 'json' | 'slack') =>
      createActivities({
        topology: () =>
          buildTopology({ notify: { webhook: { url: { env: 'HOOK' }, ...(format ? { format } : {}) } } }, { console: { url: 'https://sy.example/' } }),
        secret: async () => url(),
      });
    await withConsole().notify({
      cluster: 'main',
      event: 'checkpoint.waiting',
      text: 'waiting at "old-primary-dead"',
      fields: { workflowId: 'failover-main-1', checkpoint: 'old-primary-dead' },
    });
    await withConsole().notify({ cluster: 'main', event: 'failover.completed', text: 'done', fields: { workflowId: 'failover-main-1' } });
    await withConsole('slack').notify({
      cluster: 'main',
      event: 'checkpoint.reminder',
      text: 'still <waiting> & more',
      fields: { workflowId: 'failover-main-1', checkpoint: 'old-primary-dead' },
    });
    const [cp, run, slack] = received.map((r) => r.body as Record<string, any>);
    assert.equal(cp.link, 'https://sy.example/runs/failover-main-1/checkpoints/old-primary-dead');
    assert.equal(cp.text, '[main] checkpoint.waiting: waiting at "old-primary-dead" https://sy.example/runs/failover-main-1/checkpoints/old-primary-dead');
    assert.equal(run.link, 'https://sy.example/runs/failover-main-1');
    assert.deepEqual(slack, {
      text: '[main] checkpoint.reminder: still <waiting> & more',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: '[main] checkpoint.reminder: still &lt;waiting&gt; &amp; more' } },
        {
          type: 'actions',
          elements: [
            {
              type: 'button',
              text: { type: 'plain_text', text: 'Open in the switchyard console' },
              url: 'https://sy.example/runs/failover-main-1/checkpoints/old-primary-dead',
            },
          ],
        },
      ],
    });
  });

  it('reports an error answer as not delivered, without throwing', async () => {
    answer = 500;
    const warnings: string[] = [];
    const act = createActivities({
      topology: () => top({ webhook: { url: { env: 'HOOK' } } }),
      secret: async () => url(),
      logger: { info: () => undefined, warn: (m, a) => warnings.push(`${m} ${JSON.stringify(a)}`) },
    });
    const r = await act.notify({ cluster: 'main', event: 'x', text: 'y' });
    assert.deepEqual([r.delivered, r.httpStatus], [false, 500]);
    assert.equal(warnings.length, 1, 'the failure is logged');
    assert.ok(!warnings[0].includes(TOKEN));
    answer = 200;
  });

  it('reports an unreachable webhook as not delivered, and never shows the URL', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const act = createActivities({
      topology: () => top({ webhook: { url: { env: 'HOOK' } } }),
      secret: async () => `http://127.0.0.1:${deadPort}/hooks/${TOKEN}`,
    });
    const r = await act.notify({ cluster: 'main', event: 'x', text: 'y' });
    assert.equal(r.delivered, false);
    assert.match(r.detail, /webhook not reachable: .*ECONNREFUSED/);
    assert.ok(!JSON.stringify(r).includes(TOKEN));
  });

  it('a missing secret is reported by its reference, not thrown', async () => {
    delete process.env.SWITCHYARD_TEST_NO_SUCH_HOOK;
    const act = createActivities({ topology: () => top({ webhook: { url: { env: 'SWITCHYARD_TEST_NO_SUCH_HOOK' } } }) });
    const r = await act.notify({ cluster: 'main', event: 'x', text: 'y' });
    assert.equal(r.delivered, false);
    assert.match(r.detail, /SWITCHYARD_TEST_NO_SUCH_HOOK is not set/);
  });

  it('does nothing when no webhook is configured', async () => {
    received.length = 0;
    const act = createActivities({ topology: () => top({}) });
    const r = await act.notify({ cluster: 'main', event: 'x', text: 'y' });
    assert.deepEqual([r.configured, r.delivered], [false, false]);
    assert.equal(received.length, 0);
  });
});
