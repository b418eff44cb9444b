import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { TidemarkError } from '@tidemark/contracts';
import { createBreaker } from '../src/breaker.js';
import { backoffDelay, retryWithBackoff } from '../src/retry.js';

const silent = pino({ level: 'silent' });
const failing = () => Promise.reject(new TidemarkError('STORAGE_UNAVAILABLE', 'down'));

describe('breaker', () => {
  it('opens after repeated failures and then fails fast with BREAKER_OPEN (retryable)', async () => {
    const breaker = createBreaker('s3', silent, { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 });
    for (let i = 0; i < 3; i++) await expect(breaker.fire(failing)).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(breaker.state).toBe('open');
    let called = false;
    const error = await breaker.fire(async () => {
      called = true;
      return 1;
    }).catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(error).toBeInstanceOf(TidemarkError);
    expect(error).toMatchObject({ code: 'BREAKER_OPEN', retryable: true });
    breaker.shutdown();
  });

  it('does not count errors that isFailure excludes', async () => {
    const breaker = createBreaker('s3', silent, {
      volumeThreshold: 2,
      isFailure: (e) => !(e instanceof TidemarkError && e.code === 'STORAGE_NOT_FOUND'),
    });
    for (let i = 0; i < 5; i++) {
      await expect(breaker.fire(() => Promise.reject(new TidemarkError('STORAGE_NOT_FOUND', 'no such key')))).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
    }
    expect(breaker.state).toBe('closed');
    await expect(breaker.fire(async () => 42)).resolves.toBe(42);
    breaker.shutdown();
  });

  it('turns a slow call into TIMEOUT', async () => {
    const breaker = createBreaker('slow', silent, { timeoutMs: 50 });
    await expect(breaker.fire(() => new Promise((r) => setTimeout(r, 500)))).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true });
    breaker.shutdown();
  });
});

describe('retryWithBackoff', () => {
  it('retries retryable errors until the call succeeds', async () => {
    const seen: number[] = [];
    const result = await retryWithBackoff(async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw new TidemarkError('SOURCE_UNAVAILABLE', 'not yet');
      return 'ok';
    }, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 });
    expect(result).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('does not retry a permanent error and stops after the last attempt', async () => {
    let calls = 0;
    await expect(retryWithBackoff(async () => {
      calls++;
      throw new TidemarkError('SOURCE_AUTH_FAILED', 'bad password');
    }, { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 })).rejects.toMatchObject({ code: 'SOURCE_AUTH_FAILED' });
    expect(calls).toBe(1);
    calls = 0;
    await expect(retryWithBackoff(async () => {
      calls++;
      throw new TidemarkError('SOURCE_UNAVAILABLE', 'down');
    }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 })).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(calls).toBe(3);
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const started = Date.now();
    await expect(retryWithBackoff(() => Promise.reject(new TidemarkError('SOURCE_UNAVAILABLE', 'down')), {
      attempts: 10, baseDelayMs: 10_000, maxDelayMs: 10_000, signal: controller.signal,
    }).catch((e: unknown) => {
      throw e;
    })).rejects.toBeInstanceOf(TidemarkError);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('uses full jitter bounded by the exponential cap', () => {
    expect(backoffDelay(1, 100, 1000, () => 0.999)).toBeLessThan(100);
    expect(backoffDelay(4, 100, 1000, () => 0.999)).toBeLessThan(800);
    expect(backoffDelay(20, 100, 1000, () => 0.999)).toBeLessThan(1000);
    expect(backoffDelay(3, 100, 1000, () => 0)).toBe(0);
  });
});
