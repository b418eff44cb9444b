// A webhook destination: POST of the Slack-shaped message with a timeout, a circuit breaker per
// webhook and a few retries with backoff. Webhook URLs are secrets (Slack's carry the token in
// the path), so only the origin is ever logged.
import { TidemarkError, isRetryable, type Severity } from '@tidemark/contracts';
import { createBreaker, retryWithBackoff, type Breaker, type Logger } from '@tidemark/runtime';
import type { AlertChannel } from '../alerts/dispatcher.js';
import { toSlackMessage } from '../alerts/slack.js';

export interface WebhookOptions {
  readonly timeoutMs?: number;
  readonly attempts?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly fetch?: typeof fetch;
}

export interface WebhookChannel extends AlertChannel {
  readonly breaker: Breaker;
}

export function webhookName(url: string): string {
  try {
    return `webhook ${new URL(url).origin}`;
  } catch {
    return 'webhook (invalid url)';
  }
}

export function createWebhookChannel(webhook: { url: string; minSeverity: Severity }, logger: Logger, options: WebhookOptions = {}): WebhookChannel {
  const name = webhookName(webhook.url);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const doFetch = options.fetch ?? fetch;
  const breaker = createBreaker(name, logger, { timeoutMs: timeoutMs + 1_000, resetTimeoutMs: 30_000 });

  async function post(body: string): Promise<void> {
    let response: Response;
    try {
      response = await doFetch(webhook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      const reason = (cause as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause as Error).message;
      throw new TidemarkError('ALERT_DELIVERY_FAILED', `${name} could not be reached: ${reason}`, { cause });
    }
    // Drain the body so the connection can be reused.
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return;
    // 408/429/5xx may pass; any other 4xx means the webhook refuses this request for good.
    const retryable = response.status === 408 || response.status === 429 || response.status >= 500;
    throw new TidemarkError('ALERT_DELIVERY_FAILED', `${name} answered http ${response.status}; check the webhook url and its receiver`, { retryable });
  }

  return {
    name,
    minSeverity: webhook.minSeverity,
    breaker,
    async deliver(alert) {
      const body = JSON.stringify(toSlackMessage(alert));
      await retryWithBackoff(() => breaker.fire(() => post(body)), {
        attempts: options.attempts ?? 4,
        baseDelayMs: options.baseDelayMs ?? 500,
        maxDelayMs: options.maxDelayMs ?? 8_000,
        shouldRetry: isRetryable,
        onRetry: (err, attempt, delayMs) => logger.warn({ webhook: name, attempt, delayMs, err: (err as Error).message }, 'webhook delivery failed; retrying'),
      });
    },
  };
}
