/**
 * A cluster's webhook for tests: a local HTTP server that keeps every notification it is sent,
 * and the file holding its URL (the topology names it as a secret reference). Closed, and its
 * directory removed, by close().
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './runs';
import { startStage, type Stage, type StageOptions } from './stage';

export interface Notification {
  event: string;
  message: string;
  text: string;
  link: string | null;
  fields: Record<string, unknown>;
}

export interface Webhook {
  /** The file with the URL: `notify: { webhook: { url: { file } } }`. */
  urlFile: string;
  received: Notification[];
  /** The first notification (seen or to come) that satisfies pred; fails after ms with what came. */
  waitFor(pred: (n: Notification) => boolean, what: string, ms?: number): Promise<Notification>;
  close(): Promise<void>;
}

export async function startWebhook(): Promise<Webhook> {
  const received: Notification[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      try {
        const j = JSON.parse(body) as Notification;
        received.push({ event: j.event, message: j.message, text: j.text, link: j.link ?? null, fields: j.fields ?? {} });
      } catch {
        /* not a notification */
      }
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-test-webhook-'));
  const urlFile = join(dir, 'url');
  writeFileSync(urlFile, `http://127.0.0.1:${(server.address() as { port: number }).port}/hook?token=secret-token\n`);
  return {
    urlFile,
    received,
    async waitFor(pred, what, ms = 90_000) {
      for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
        const n = received.find(pred);
        if (n) return n;
      }
      throw new Error(`the webhook never got ${what}; got: ${received.map((n) => `${n.event}: ${n.message}`).join(' | ') || 'nothing'}`);
    },
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A sandbox stage whose cluster notifies a fresh webhook (`edit`: further changes to the cluster); the webhook is closed if the stage fails to start. */
export async function stageNotifying(
  edit?: (cluster: Record<string, unknown>) => void,
  opts: Omit<StageOptions, 'edit'> = {},
): Promise<{ st: Stage; hook: Webhook }> {
  const hook = await startWebhook();
  try {
    const st = await startStage({
      ...opts,
      edit: (c) => {
        c.notify = { webhook: { url: { file: hook.urlFile } } };
        edit?.(c);
      },
    });
    return { st, hook };
  } catch (err) {
    await hook.close();
    throw err;
  }
}
