import { describe, expect, it } from 'vitest';
import { TidemarkError, decode, encode, encodeJson, type Manifest, type VerificationRecord } from '@tidemark/contracts';
import { Catalog, type CatalogSource } from '../src/catalog/catalog.js';
import { describeArtifact, listArtifacts } from '../src/handlers/catalog-requests.js';
import { decodeRequest, encodeReply, requestEncoding } from '../src/handlers/wire.js';
import { manifest, verification } from './fixtures.js';

/** A bucket in a map: the catalog only needs these three reads. */
class FakeBucket implements CatalogSource {
  manifests = new Map<string, Manifest>();
  verifications = new Map<string, VerificationRecord>();
  failVerificationReads: unknown;
  put(m: Manifest, v?: VerificationRecord) {
    this.manifests.set(m.id, m);
    if (v) this.verifications.set(m.id, v);
  }
  async listManifests() {
    return [...this.manifests.values()];
  }
  async readManifest(_e: string, _t: string, id: string) {
    return this.manifests.get(id);
  }
  async readVerification(m: Manifest) {
    if (this.failVerificationReads) throw this.failVerificationReads;
    return this.verifications.get(m.id);
  }
}

function bucketWithThree() {
  const bucket = new FakeBucket();
  bucket.put(manifest({ id: 'old', createdAt: '2025-01-01T00:00:00Z' }), verification('old', 'passed'));
  bucket.put(manifest({ id: 'mid', createdAt: '2025-01-02T00:00:00Z' }), verification('mid', 'failed'));
  bucket.put(manifest({ id: 'new', createdAt: '2025-01-03T00:00:00Z', engine: 'qdrant', target: 'vectors', verify: false }));
  return bucket;
}

describe('Catalog', () => {
  it('rebuilds from the bucket alone, newest first, with verification status', async () => {
    const catalog = new Catalog(bucketWithThree());
    expect(await catalog.rebuild()).toBe(3);
    const list = catalog.list();
    expect(list.map((e) => [e.artifactId, e.verification])).toEqual([['new', 'not-required'], ['mid', 'failed'], ['old', 'passed']]);
    expect(list[1]?.verificationError?.code).toBe('VERIFY_MISMATCH');
    expect(catalog.list({ engine: 'pg', limit: 1 }).map((e) => e.artifactId)).toEqual(['mid']);
  });

  it('refreshes one artifact from the bucket when an event hints at it', async () => {
    const bucket = bucketWithThree();
    const catalog = new Catalog(bucket);
    await catalog.rebuild();
    bucket.put(manifest({ id: 'fresh', createdAt: '2025-01-04T00:00:00Z' }));
    expect(catalog.list()).toHaveLength(3);
    await catalog.refresh('pg', 'main', 'fresh');
    expect(catalog.list()[0]).toMatchObject({ artifactId: 'fresh', verification: 'unverified' });
    bucket.verifications.set('fresh', verification('fresh', 'passed', '2025-01-04T01:00:00Z'));
    await catalog.refresh('pg', 'main', 'fresh');
    expect(catalog.list()[0]).toMatchObject({ verification: 'passed', verifiedAt: '2025-01-04T01:00:00Z' });
    bucket.manifests.delete('fresh');
    await catalog.refresh('pg', 'main', 'fresh');
    expect(catalog.list()).toHaveLength(3);
  });

  it('propagates a storage outage while reading verification instead of showing unverified', async () => {
    const bucket = bucketWithThree();
    bucket.failVerificationReads = new TidemarkError('STORAGE_UNAVAILABLE', 'bucket down');
    await expect(new Catalog(bucket).rebuild()).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
  });

  it('lists a corrupt verification record as unverified and reports it', async () => {
    const bucket = bucketWithThree();
    bucket.failVerificationReads = new TidemarkError('INTEGRITY_FORMAT', 'bad json');
    const invalid: string[] = [];
    const catalog = new Catalog(bucket, (key) => invalid.push(key));
    await catalog.rebuild();
    expect(catalog.list().find((e) => e.artifactId === 'old')?.verification).toBe('unverified');
    expect(invalid).toHaveLength(3);
  });
});

describe('catalog requests', () => {
  it('lists with filters and answers describe', async () => {
    const catalog = new Catalog(bucketWithThree());
    await catalog.rebuild();
    expect(listArtifacts({}, catalog)).toMatchObject({ total: 3 });
    expect(listArtifacts({ engine: 'pg', target: 'main', limit: 1 }, catalog)).toMatchObject({ total: 2, artifacts: [{ artifactId: 'mid' }] });
    const described = await describeArtifact({ artifactId: 'old' }, catalog);
    expect(described).toMatchObject({ manifest: { id: 'old' }, verification: { status: 'passed' }, status: 'passed' });
  });

  it('answers an unknown artifact with ARTIFACT_NOT_FOUND and a bad request with COMMAND_INVALID', async () => {
    const catalog = new Catalog(bucketWithThree());
    await catalog.rebuild();
    expect(await describeArtifact({ artifactId: 'nope' }, catalog)).toMatchObject({ error: { code: 'ARTIFACT_NOT_FOUND' } });
    expect(await describeArtifact({}, catalog)).toMatchObject({ error: { code: 'COMMAND_INVALID', message: expect.stringContaining('artifactId') } });
    expect(listArtifacts({ engine: 'oracle' }, catalog)).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
    expect(listArtifacts({ limit: 0 }, catalog)).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
  });

  it('finds an artifact the index has not seen yet in the bucket when engine and target are given', async () => {
    const bucket = bucketWithThree();
    const catalog = new Catalog(bucket);
    await catalog.rebuild();
    bucket.put(manifest({ id: 'late' }));
    expect(await describeArtifact({ artifactId: 'late' }, catalog)).toMatchObject({ error: { code: 'ARTIFACT_NOT_FOUND' } });
    expect(await describeArtifact({ artifactId: 'late', engine: 'pg', target: 'main' }, catalog)).toMatchObject({ status: 'unverified' });
  });
});

describe('wire encoding', () => {
  const header = (value: string) => ({ get: (name: string) => (name === 'Content-Type' ? value : '') });
  it('replies in the encoding of the request', () => {
    expect(requestEncoding(encodeJson({}))).toBe('json');
    expect(requestEncoding(new Uint8Array())).toBe('json');
    expect(requestEncoding(encode({}))).toBe('msgpack');
    expect(requestEncoding(encode({}), header('application/json'))).toBe('json');
    const reply = encodeReply({ artifacts: [] }, 'msgpack');
    expect(decode(reply.data)).toEqual({ artifacts: [] });
    expect(new TextDecoder().decode(encodeReply({ a: 1 }, 'json').data)).toBe('{"a":1}');
  });

  it('turns an undecodable or oversized request into an error, not an exception', () => {
    expect(decodeRequest(new TextEncoder().encode('{not json'))).toMatchObject({ ok: false, error: { code: 'COMMAND_UNDECODABLE' } });
    expect(decodeRequest(new Uint8Array(70 * 1024).fill(0x7b))).toMatchObject({ ok: false, error: { code: 'COMMAND_TOO_LARGE' } });
    expect(decodeRequest(encode({ limit: 3 }))).toEqual({ ok: true, value: { limit: 3 } });
  });
});
