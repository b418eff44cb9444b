// The webhook payload: Slack's incoming-webhook shape (`text` plus `blocks`), which Mattermost,
// Rocket.Chat and most chat bridges also accept. `text` alone carries the whole message.
import type { Alert, Severity } from '@tidemark/contracts';

const ICON: Readonly<Record<Severity, string>> = { critical: ':rotating_light:', warning: ':warning:', info: ':information_source:' };

export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly unknown[];
}

export function toSlackMessage(alert: Alert): SlackMessage {
  const scope = alert.engine && alert.target ? ` ${alert.engine}/${alert.target}` : '';
  const text = `${ICON[alert.severity]} [${alert.severity.toUpperCase()}] ${alert.kind.replace(/_/g, ' ')}${scope}: ${alert.summary}`;
  const facts = [
    `*kind:* ${alert.kind}`,
    ...(alert.artifactId ? [`*artifact:* ${alert.artifactId}`] : []),
    ...(alert.requestId ? [`*request:* ${alert.requestId}`] : []),
    ...(alert.error ? [`*error:* ${alert.error.code}`] : []),
    `*at:* ${alert.occurredAt}`,
  ];
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: facts.join('  ·  ') }] },
    ],
  };
}
