import { createHash } from 'node:crypto';
import type { Engine, Manifest, VerificationRecord } from '@tidemark/contracts';
import { toCatalogEntry, type CatalogEntry, type VerificationStatus } from '../src/catalog/entry.js';

export function manifest(overrides: Partial<Manifest> & { id: string; createdAt?: string }): Manifest {
  const engine: Engine = overrides.engine ?? 'pg';
  const target = overrides.target ?? 'main';
  const createdAt = overrides.createdAt ?? '2025-01-01T00:00:00.000Z';
  return {
    manifestVersion: 1,
    engine,
    target,
    kind: 'logical',
    format: 'pg_dump-custom',
    requestId: `req-${overrides.id}`,
    createdAt,
    finishedAt: createdAt,
    agent: { id: 'test-agent', version: '0.0.0' },
    source: {},
    pipeline: { compression: 'none', encryption: null },
    data: {
      key: `artifacts/${engine}/${target}/${overrides.id}/data-a.bin`,
      storedBytes: 5,
      rawBytes: 5,
      sha256: createHash('sha256').update('hello').digest('hex'),
    },
    verify: true,
    ...overrides,
  };
}

export function verification(artifactId: string, status: 'passed' | 'failed', verifiedAt = '2025-01-01T01:00:00.000Z'): VerificationRecord {
  return {
    artifactId,
    status,
    verifiedAt,
    durationMs: 10,
    checks: [{ name: 'restore', ok: status === 'passed' }],
    ...(status === 'failed' ? { error: { code: 'VERIFY_MISMATCH', message: 'row counts differ', retryable: false } } : {}),
  };
}

/** A catalog entry for the planner: `ageMinutes` before `now`, with a verification status. */
export function entry(id: string, now: Date, ageMinutes: number, status: VerificationStatus, scope: { engine?: Engine; target?: string } = {}): CatalogEntry {
  const createdAt = new Date(now.getTime() - ageMinutes * 60_000).toISOString();
  const m = manifest({ id, createdAt, verify: status !== 'not-required', ...scope });
  const record = status === 'passed' || status === 'failed' ? verification(id, status) : undefined;
  return toCatalogEntry(m, record);
}

/** Commits a tiny artifact through the real ArtifactStore (data first, manifest last). */
export async function commitArtifact(
  store: import('@tidemark/storage').ArtifactStore,
  options: { requestId: string; createdAt: Date; engine?: Engine; target?: string; verify?: boolean },
): Promise<Manifest> {
  const { Readable } = await import('node:stream');
  const { newArtifactId } = await import('@tidemark/storage');
  const engine = options.engine ?? 'pg';
  const target = options.target ?? 'main';
  const id = newArtifactId(options.requestId, options.createdAt);
  const body = Buffer.from(`data of ${id}`);
  const { key, storedBytes } = await store.saveData(engine, target, id, Readable.from([body]), body.length);
  const m = manifest({
    id, engine, target, requestId: options.requestId, createdAt: options.createdAt.toISOString(), verify: options.verify ?? true,
    data: { key, storedBytes, rawBytes: storedBytes, sha256: createHash('sha256').update(body).digest('hex') },
  });
  await store.commit(m);
  return m;
}

/** An EventPublisher that remembers what it was asked to publish. */
export function recordingPublisher() {
  const published: Array<{ subject: string; event: unknown; msgId: string | undefined }> = [];
  return {
    published,
    async publish<T>(subject: string, schema: { parse(v: unknown): T }, event: T, msgId?: string) {
      published.push({ subject, event: schema.parse(event), msgId });
    },
  };
}
