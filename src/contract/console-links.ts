/**
 * The console's addresses, built in one place: a run's page and a checkpoint's page (what
 * notifications, prompts and refusals link to), and the chat message that carries such a link.
 */

/** `/runs/<workflowId>` or `/runs/<workflowId>/checkpoints/<checkpoint>`, under `base` (no trailing slash). */
export function consoleLink(base: string, workflowId: string, checkpoint?: string | null): string {
  return `${base}/runs/${encodeURIComponent(workflowId)}${checkpoint ? `/checkpoints/${encodeURIComponent(checkpoint)}` : ''}`;
}

/** A Slack incoming-webhook message (Mattermost reads it too): the line, and a button to the console page. */
export function slackMessage(text: string, link: string | null): Record<string, unknown> {
  const mrkdwn = text.replace(/[&<>]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[ch]!);
  const block = (kind: string, body: Record<string, unknown>) => ({ type: kind, ...body });
  return {
    text,
    blocks: [
      block('section', { text: { type: 'mrkdwn', text: mrkdwn } }),
      ...(link ? [block('actions', { elements: [block('button', { text: { type: 'plain_text', text: 'Open in the switchyard console' }, url: link })] })] : []),
    ],
  };
}
