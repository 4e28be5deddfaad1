/**
 * Telling people: a JSON POST to the cluster's webhook. A notification that cannot be delivered is
 * logged and reported, never a reason for a runbook to fail. The URL is a secret (it usually
 * carries a token), so it never appears in results or logs.
 */
import { errorMessage, requestSignal } from './activity-context';
import type { Runtime } from './runtime';
import type { NotifyResult } from '../contract/observations';
import { consoleLink, slackMessage } from '../contract/console-links';
import { consoleUrl } from '../topology/operators';

export interface NotifyInput {
  cluster: string;
  /** Short machine-readable name, e.g. "failover.started", "checkpoint.waiting". */
  event: string;
  /** One line for people. */
  text: string;
  fields?: Record<string, string | number | boolean | null>;
}

export function notifyActivities(rt: Runtime) {
  return {
    notify: rt.activity(async (input: NotifyInput, call): Promise<NotifyResult> => {
      const c = call.top.cluster(input.cluster);
      const ref = c.notify.webhook?.url;
      if (!ref) return { configured: false, delivered: false, httpStatus: null, detail: 'no webhook configured for this cluster' };
      const fail = (raw: string, httpStatus: number | null = null): NotifyResult => {
        const detail = call.secrets.redact(raw);
        rt.log.warn('notification not delivered', { cluster: input.cluster, event: input.event, detail });
        return { configured: true, delivered: false, httpStatus, detail };
      };
      let url: string;
      try {
        url = await call.secrets.get(ref, `notify.webhook.url of cluster "${input.cluster}"`);
      } catch (err) {
        return fail(errorMessage(err));
      }
      const link = deepLink(consoleUrl(call.top.topology.console), input.fields);
      const text = `[${input.cluster}] ${input.event}: ${input.text}`;
      const body =
        c.notify.webhook?.format === 'slack'
          ? slackMessage(text, link)
          : {
              // "text" first so chat webhooks (Slack, Mattermost) show something readable as is.
              text: link ? `${text} ${link}` : text,
              cluster: input.cluster,
              event: input.event,
              message: input.text,
              fields: input.fields ?? {},
              link,
              at: rt.now().toISOString(),
            };
      try {
        const res = await rt.fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          redirect: 'manual',
          signal: requestSignal(rt.timeouts.httpMs),
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.status < 200 || res.status >= 300) return fail(`webhook answered HTTP ${res.status}`, res.status);
        return { configured: true, delivered: true, httpStatus: res.status, detail: `webhook answered HTTP ${res.status}` };
      } catch (err) {
        // fetch's messages do not carry the URL, but the scope scrubs it from the result anyway.
        return fail(`webhook not reachable: ${errorMessage(err)}`);
      }
    }),
  };
}

/** The console page a notification is about: the checkpoint's when it names one, else the run's; null without a console. */
export function deepLink(base: string | null, fields: NotifyInput['fields']): string | null {
  const id = fields?.workflowId;
  if (!base || typeof id !== 'string' || !id) return null;
  const cp = fields?.checkpoint;
  return consoleLink(base, id, typeof cp === 'string' ? cp : null);
}
