import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactUrl } from '../src/logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      callback();
    },
  });
  return { lines, stream, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger', () => {
  it('writes JSON named after the service', () => {
    const out = capture();
    const logger = createLogger('pg-agent', {}, out.stream);
    logger.info({ target: 'main' }, 'hello');
    const [record] = out.records();
    expect(record).toMatchObject({ name: 'pg-agent', level: 'info', msg: 'hello', target: 'main' });
  });

  it('redacts passwords, tokens and keys at any depth', () => {
    const out = capture();
    const logger = createLogger('svc', {}, out.stream);
    logger.info({ password: 'hunter2', source: { password: 'pw1', auth: { token: 'tok-123' } }, s3: { secretKey: 'sk', accessKey: 'ak' }, env: { PGPASSWORD: 'pgpw' } }, 'config');
    const text = out.lines.join('\n');
    for (const secret of ['hunter2', 'pw1', 'tok-123', '"sk"', '"ak"', 'pgpw']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('keeps the host of a connection string but hides its password', () => {
    const out = capture();
    const logger = createLogger('svc', {}, out.stream);
    logger.info({ source: { url: 'postgres://backup:s3cret@db.internal:5432/app' } }, 'connecting');
    const text = out.lines.join('\n');
    expect(text).not.toContain('s3cret');
    expect(text).toContain('postgres://backup:***@db.internal:5432/app');
  });

  it('honours TIDEMARK_LOG_LEVEL', () => {
    const out = capture();
    const logger = createLogger('svc', { TIDEMARK_LOG_LEVEL: 'warn' }, out.stream);
    logger.info('hidden');
    logger.warn('shown');
    expect(out.records().map((r) => r['msg'])).toEqual(['shown']);
  });
});

describe('redactUrl', () => {
  it('hides the password of a postgres URL', () => {
    expect(redactUrl('postgres://user:secret@h/db')).toBe('postgres://user:***@h/db');
    expect(redactUrl('postgresql://u:p%40ss@h:5432/db?sslmode=require')).toBe('postgresql://u:***@h:5432/db?sslmode=require');
  });
  it('hides password query parameters and leaves URLs without credentials alone', () => {
    expect(redactUrl('postgres://h/db?user=u&password=pw')).toBe('postgres://h/db?user=u&password=***');
    expect(redactUrl('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
    expect(redactUrl('nats://tok@127.0.0.1:4222')).toBe('nats://tok@127.0.0.1:4222');
  });
});
