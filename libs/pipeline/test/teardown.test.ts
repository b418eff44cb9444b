// The first-error-wins rule of a torn-down pipeline, and the stall detector stage.
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { TidemarkError, toErrorInfo } from '@tidemark/contracts';
import { encodeStream, firstCause, isTeardownError, settleFirstCause, stallDetector, watchForStall } from '@tidemark/pipeline';

const abortError = (): Error => Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
const prematureClose = (): Error => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
const brokenPipe = (): Error => Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
const storageDown = (): TidemarkError => new TidemarkError('STORAGE_UNAVAILABLE', 'saving x failed: ECONNRESET socket hang up');

describe('firstCause', () => {
  const cases: { name: string; errors: () => unknown[]; expected: (errors: unknown[]) => unknown }[] = [
    { name: 'an abort before the retryable error it was caused by', errors: () => [abortError(), storageDown()], expected: (e) => e[1] },
    { name: 'a premature close and a broken pipe before the real error', errors: () => [prematureClose(), brokenPipe(), storageDown()], expected: (e) => e[2] },
    { name: 'the first real error of two', errors: () => [storageDown(), new TidemarkError('DUMP_FAILED', 'pg_dump was killed')], expected: (e) => e[0] },
    {
      name: 'a TidemarkError that only wraps an abort',
      errors: () => [new TidemarkError('DUMP_FAILED', 'reading pg_dump output failed: The operation was aborted', { cause: abortError() }), storageDown()],
      expected: (e) => e[1],
    },
    { name: 'only aborts: the abort reason', errors: () => [Object.assign(abortError(), { cause: storageDown() })], expected: (e) => (e[0] as Error).cause },
    { name: 'only aborts without a reason: the first', errors: () => [abortError(), prematureClose()], expected: (e) => e[0] },
    {
      name: 'a raw error and the TidemarkError that classifies it',
      errors: () => {
        const raw = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', syscall: 'write' });
        return [raw, new TidemarkError('STORAGE_UNAVAILABLE', 'saving x failed: ENOSPC', { cause: raw })];
      },
      expected: (e) => e[1],
    },
  ];
  it.each(cases)('$name', ({ errors, expected }) => {
    const list = errors();
    expect(firstCause(list)).toBe(expected(list));
  });

  it('knows teardown errors from real ones', () => {
    expect([abortError(), prematureClose(), brokenPipe()].map(isTeardownError)).toEqual([true, true, true]);
    expect([storageDown(), new Error('boom'), 'text', Object.assign(new Error('reset'), { code: 'ECONNRESET' })].map(isTeardownError)).toEqual([false, false, false, false]);
  });
});

describe('settleFirstCause', () => {
  it('an abort that follows (or even precedes) a retryable error leaves the retryable error, still retryable', async () => {
    const cause = storageDown();
    let tornDown: unknown;
    const error = await settleFirstCause(
      [
        Promise.reject(abortError()), // the encode summary: its output was aborted by the failed save
        new Promise((_resolve, reject) => setTimeout(() => reject(cause), 20)), // the save, after its clean-up
        Promise.resolve('facts'),
      ] as const,
      (first) => (tornDown = first),
    ).catch((e: unknown) => e);
    expect(error).toBe(cause);
    expect(toErrorInfo(error)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true });
    expect(isTeardownError(tornDown)).toBe(true);
  });

  it('resolves with every value when nothing fails', async () => {
    expect(await settleFirstCause([Promise.resolve(1), Promise.resolve('two')] as const)).toEqual([1, 'two']);
  });

  it('through the real encode pipeline: a consumer failing with a retryable error is what the summary reports', async () => {
    const cause = storageDown();
    const encoded = encodeStream(Readable.from([Buffer.alloc(64 * 1024, 1), Buffer.alloc(64 * 1024, 2)]), { compression: 'gzip' });
    // A storage save that fails on its first chunk, as the S3 and fs backends do: the body is destroyed with the cause.
    const saving = (async () => {
      for await (const _chunk of encoded.output.iterator({ destroyOnReturn: false })) {
        encoded.output.destroy(cause);
        throw cause;
      }
    })();
    const error = await settleFirstCause([saving, encoded.summary] as const).catch((e: unknown) => e);
    expect(toErrorInfo(error)).toEqual(cause.toInfo());
  });
});

describe('stallDetector', () => {
  it('fails a source that stops delivering, and destroys it', async () => {
    const source = new PassThrough();
    source.write(Buffer.from('first'));
    const started = Date.now();
    const error = await pipeline(source, stallDetector({ stallMs: 200, what: 'reading x' }), new Writable({ write: (_c, _e, done) => done() })).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ code: 'TIMEOUT', retryable: true, message: expect.stringContaining('reading x made no progress for 0.2 s') });
    expect(source.destroyed).toBe(true);
  });

  it('does not count time the consumer spends not reading', async () => {
    // More pieces than the buffers between source and consumer hold, so the source waits on the consumer.
    const pieces = Array.from({ length: 6 }, (_v, i) => Buffer.alloc(64 * 1024, i));
    const watched = watchForStall(Readable.from(pieces), { stallMs: 100 });
    let received = 0;
    for await (const piece of watched) {
      received += (piece as Buffer).length;
      await new Promise((resolve) => setTimeout(resolve, 150)); // a slow consumer, longer than the stall window
    }
    expect(received).toBe(6 * 64 * 1024);
  });

  it('passes a source that keeps moving, however long it takes in all', async () => {
    async function* trickle() {
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 60));
        yield Buffer.from([i]);
      }
    }
    const collected: Buffer[] = [];
    await pipeline(Readable.from(trickle()), stallDetector({ stallMs: 150 }), new Writable({ write: (chunk: Buffer, _e, done) => { collected.push(chunk); done(); } }));
    expect(Buffer.concat(collected)).toEqual(Buffer.from([0, 1, 2, 3, 4, 5]));
  });
});
