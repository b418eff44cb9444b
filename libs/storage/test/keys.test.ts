import { describe, expect, it } from 'vitest';
import { ARTIFACT_ROOTS, artifactKeys, newArtifactId, parseArtifactKey } from '@tidemark/storage';

describe('artifact keys', () => {
  it('an artifact id is the request time and a digest of the request id', () => {
    const id = newArtifactId('request-42', new Date('2024-05-01T02:03:04.567Z'));
    expect(id).toMatch(/^20240501T020304Z-[0-9a-f]{10}$/);
  });

  it('a redelivered request maps to the same artifact id', () => {
    const at = new Date('2024-05-01T02:03:04Z');
    expect(newArtifactId('request-42', at)).toBe(newArtifactId('request-42', at));
    expect(newArtifactId('request-42', at)).not.toBe(newArtifactId('request-43', at));
  });

  it('ids sort by request time', () => {
    const earlier = newArtifactId('zzz', new Date('2024-05-01T02:03:04Z'));
    const laterId = newArtifactId('aaa', new Date('2024-05-01T02:03:05Z'));
    expect([laterId, earlier].sort()).toEqual([earlier, laterId]);
  });

  it('lays out manifest, verification and data keys under one prefix', () => {
    const keys = artifactKeys('pg', 'orders', '20240501T020304Z-0123456789');
    expect(ARTIFACT_ROOTS.artifacts).toBe('artifacts/');
    expect(keys.prefix).toBe('artifacts/pg/orders/20240501T020304Z-0123456789/');
    expect(keys.manifest).toBe(`${keys.prefix}manifest.json`);
    expect(keys.verification).toBe(`${keys.prefix}verification.json`);
    expect(keys.data('ab12')).toBe(`${keys.prefix}data-ab12.bin`);
    expect(parseArtifactKey(keys.data('ab12'))).toEqual({ engine: 'pg', target: 'orders', artifactId: '20240501T020304Z-0123456789', prefix: keys.prefix, name: 'data-ab12.bin' });
    expect(parseArtifactKey('artifacts/pg/orders/loose-file')).toBeUndefined();
  });

  it('refuses names that would leave the artifact prefix', () => {
    expect(() => artifactKeys('pg', '../etc', 'x')).toThrow(/invalid target/);
    expect(() => artifactKeys('pg', 'orders', 'a/b')).toThrow(/invalid artifact id/);
    expect(() => artifactKeys('pg', 'orders', 'ok').data('../x')).toThrow(/invalid attempt token/);
  });
});
