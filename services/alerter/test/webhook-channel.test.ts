// The webhook adapter against a real local HTTP server: retries on 5xx, gives up on 4xx, times out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Alert } from '@tidemark/contracts';
import { createLogger } from '@tidemark/runtime';
import { createWebhookChannel, webhookName } from '../src/index.js';

const logger = createLogger('webhook-test', { TIDEMARK_LOG_LEVEL: 'silent' });
const alert: Alert = {
  schemaVersion: 1, occurredAt: '2025-01-01T00:00:00.000Z', severity: 'critical', kind: 'backup_failed',
  summary: 'Backup of pg/main failed.', engine: 'pg', target: 'main', dedupeKey: 'backup_failed:pg:main:r1',
};

describe('webhook channel', () => {
  let server: Server;
  let base = '';
  const script: number[] = [];
  let calls = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      calls += 1;
      req.resume();
      req.on('end', () => {
        const status = script.shift() ?? 200;
        if (status === 0) return; // never answer: the client must time out
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const fast = { attempts: 3, baseDelayMs: 10, maxDelayMs: 20, timeoutMs: 300 };

  it('retries a 5xx and succeeds', async () => {
    calls = 0;
    script.push(503, 200);
    const channel = createWebhookChannel({ url: `${base}/ok`, minSeverity: 'warning' }, logger, fast);
    await channel.deliver(alert);
    expect(calls).toBe(2);
    channel.breaker.shutdown();
  });

  it('gives up at once on a 4xx, naming only the origin', async () => {
    calls = 0;
    script.push(404);
    const channel = createWebhookChannel({ url: `${base}/services/T0/B0/secret-token`, minSeverity: 'warning' }, logger, fast);
    const error = await channel.deliver(alert).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect(error?.message).toContain('http 404');
    expect(error?.message).not.toContain('secret-token');
    expect(calls).toBe(1);
    channel.breaker.shutdown();
  });

  it('bounds a webhook that never answers', async () => {
    calls = 0;
    script.push(0, 0, 0);
    const channel = createWebhookChannel({ url: `${base}/slow`, minSeverity: 'warning' }, logger, fast);
    const started = Date.now();
    await expect(channel.deliver(alert)).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(calls).toBe(3);
    channel.breaker.shutdown();
  });

  it('names a webhook by its origin only', () => {
    expect(webhookName('https://hooks.slack.com/services/T0/B0/xyz')).toBe('webhook https://hooks.slack.com');
  });
});
