import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { effectiveTarget, filesSourceOf, libpqEnv, parseConfig, storageConfig } from '@tidemark/config';

const minimal = `
targets:
  - name: main
    engine: pg
    postgres: { host: db, database: app, passwordFile: secrets/pg }
    schedules:
      - id: nightly
        cron: "0 2 * * *"
sandbox:
  postgres: { host: sandbox, passwordEnv: SANDBOX_PW }
`;

function configError(text: string): string {
  try {
    parseConfig(text, '/etc/tidemark/tidemark.yaml', {});
  } catch (error) {
    expect(error).toBeInstanceOf(TidemarkError);
    expect((error as TidemarkError).code).toBe('CONFIG_INVALID');
    return (error as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('tidemark.yaml', () => {
  it('applies defaults and resolves relative paths against the file', () => {
    const config = parseConfig(minimal, '/etc/tidemark/tidemark.yaml', {});
    expect(config.storage).toMatchObject({ type: 'fs', root: '/etc/tidemark/.tidemark/storage' });
    expect(config.targets[0]?.postgres?.passwordFile).toBe('/etc/tidemark/secrets/pg');
    expect(config.targets[0]?.postgres?.port).toBe(5432);
    expect(config.sandbox?.postgres?.passwordEnv).toBe('SANDBOX_PW');
    expect(effectiveTarget(config, config.targets[0]!)).toMatchObject({ encrypt: false, verify: true, retention: { keepLast: 7, maxAgeDays: 30 } });
  });

  it('lets TIDEMARK_NATS_URL override the file', () => {
    expect(parseConfig(minimal, '/x/t.yaml', { TIDEMARK_NATS_URL: 'nats://nats:4222' }).nats.url).toBe('nats://nats:4222');
  });

  it('names the field of an unknown key', () => {
    expect(configError('targets:\n  - name: main\n    engine: pg\n    postgres: {}\n    schedule: []\n')).toMatch(/targets\[0\]\.schedule: is not a known field/);
  });

  it('names the field of an invalid cron expression', () => {
    expect(configError('targets:\n  - name: main\n    engine: pg\n    postgres: {}\n    schedules:\n      - id: x\n        cron: "61 * * * *"\n')).toMatch(/targets\[0\]\.schedules\[0\]\.cron: invalid cron expression/);
  });

  it('requires an endpoint for s3 storage and a connection for pg and qdrant targets', () => {
    expect(configError('storage:\n  type: s3\n')).toMatch(/storage\.endpoint: is required/);
    expect(configError('targets:\n  - name: vectors\n    engine: qdrant\n')).toMatch(/targets\[0\]\.qdrant: is required/);
    expect(configError('targets:\n  - name: main\n    engine: pg\n')).toMatch(/targets\[0\]\.postgres: is required/);
  });

  it('rejects target names that cannot be a subject token', () => {
    expect(configError('targets:\n  - name: Main.DB\n    engine: pg\n    postgres: {}\n')).toMatch(/targets\[0\]\.name/);
  });

  it('reads secrets from the environment variables it names, never from the file', () => {
    const config = parseConfig('storage:\n  type: s3\n  endpoint: http://minio:9000\n', '/x/t.yaml', {});
    expect(() => storageConfig(config, {})).toThrow(/TIDEMARK_S3_ACCESS_KEY/);
    expect(storageConfig(config, { TIDEMARK_S3_ACCESS_KEY: 'a', TIDEMARK_S3_SECRET_KEY: 'b' })).toMatchObject({ type: 's3', endPoint: 'minio', port: 9000, useSSL: false });
    const conn = parseConfig(minimal, '/x/t.yaml', {}).sandbox!.postgres!;
    expect(libpqEnv(conn, { SANDBOX_PW: 'pw' })).toMatchObject({ PGHOST: 'sandbox', PGPASSWORD: 'pw' });
    expect(() => libpqEnv(conn, {})).toThrow(/SANDBOX_PW .*is not set/);
  });

  it("takes the address a point-in-time restore's server listens on: 127.0.0.1 unless configured, one address or *", () => {
    expect(parseConfig(minimal, '/x/t.yaml', {}).pg.restoreListenAddress).toBe('127.0.0.1');
    for (const address of ['0.0.0.0', '*', '::1', '10.1.2.3', 'db-restore.internal']) {
      expect(parseConfig(`pg: { restoreListenAddress: "${address}" }\n`, '/x/t.yaml', {}).pg.restoreListenAddress).toBe(address);
    }
    for (const address of ['127.0.0.1,10.0.0.1', "x' ; drop", '']) expect(configError(`pg: { restoreListenAddress: "${address}" }\n`)).toMatch(/pg\.restoreListenAddress/);
  });

  it('reads a qdrant connection on qdrant targets, naming bad fields', () => {
    const config = parseConfig('targets:\n  - name: vectors\n    engine: qdrant\n    qdrant: { url: "http://qdrant:6333", apiKeyEnv: QDRANT_KEY, collections: [docs], incrementalField: updatedAt }\n', '/x/t.yaml', {});
    expect(config.targets[0]?.qdrant).toEqual({ url: 'http://qdrant:6333', apiKeyEnv: 'QDRANT_KEY', collections: ['docs'], incrementalField: 'updatedAt' });
    expect(configError('targets:\n  - name: vectors\n    engine: qdrant\n    qdrant: { url: "qdrant:6333" }\n')).toMatch(/targets\[0\]\.qdrant\.url: an http/);
    expect(configError('targets:\n  - name: vectors\n    engine: qdrant\n    qdrant: { url: "http://q:6333", apiKey: secret }\n')).toMatch(/targets\[0\]\.qdrant\.apiKey: is not a known field/);
    expect(configError('targets:\n  - name: main\n    engine: pg\n    postgres: {}\n    qdrant: { url: "http://q:6333" }\n')).toMatch(/targets\[0\]\.qdrant: is only for engine qdrant/);
  });

  it('reads files targets: a directory, s3 or ollama source, tree schedules by default, and the local files section', () => {
    const config = parseConfig(
      'files: { restoreConcurrency: 4 }\n'
        + 'targets:\n'
        + '  - name: docs\n    engine: files\n    files: { source: { kind: directory, path: docs, exclude: ["*.tmp"] }, strict: true }\n'
        + '    schedules:\n      - { id: nightly, cron: "0 2 * * *" }\n      - { id: weekly, cron: "0 3 * * 0", fullRehash: true }\n'
        + '  - name: models\n    engine: files\n    files: { source: { kind: ollama, path: /var/lib/ollama/models }, concurrency: 2 }\n'
        + '  - name: bucket\n    engine: files\n    files: { source: { kind: s3, endpoint: "http://minio:9000", bucket: docs, prefix: cases/, accessKeyEnv: DOCS_AK, secretKeyEnv: DOCS_SK } }\n',
      '/etc/tidemark/tidemark.yaml',
      {},
    );
    const [docs, models, bucket] = config.targets;
    expect(docs?.files).toEqual({ source: { kind: 'directory', path: '/etc/tidemark/docs', exclude: ['*.tmp'] }, strict: true });
    expect(docs?.schedules.map((s) => [s.kind, s.fullRehash])).toEqual([['tree', undefined], ['tree', true]]);
    expect(models?.files).toEqual({ source: { kind: 'ollama', path: '/var/lib/ollama/models' }, strict: false, concurrency: 2 });
    expect(config.files).toEqual({ workDir: '/etc/tidemark/.tidemark/files', restoreConcurrency: 4 });
    expect(() => filesSourceOf(bucket!, {})).toThrow(/DOCS_AK .*files\.source\.accessKeyEnv/);
    expect(filesSourceOf(bucket!, { DOCS_AK: 'a', DOCS_SK: 'b' })).toEqual({ kind: 's3', endpoint: 'http://minio:9000', bucket: 'docs', prefix: 'cases/', accessKey: 'a', secretKey: 'b' });
  });

  it('names the field of a bad files target', () => {
    const files = (body: string) => configError(`targets:\n  - name: docs\n    engine: files\n${body}`);
    expect(files('')).toMatch(/targets\[0\]\.files: is required for engine files/);
    expect(files('    files: { source: { kind: nfs, path: /x } }\n')).toMatch(/targets\[0\]\.files\.source\.kind: expected one of directory, s3, ollama/);
    expect(files('    files: { source: { kind: directory } }\n')).toMatch(/targets\[0\]\.files\.source\.path: is required/);
    expect(files('    files: { source: { kind: s3, endpoint: "http://m:9000", bucket: docs, accessKeyEnv: A, secretKeyEnv: B, secretKey: x } }\n')).toMatch(/targets\[0\]\.files\.source\.secretKey: is not a known field/);
    expect(files('    files: { source: { kind: ollama, path: /m } }\n    schedules: [{ id: x, cron: "0 2 * * *", kind: logical }]\n')).toMatch(/targets\[0\]\.schedules\[0\]\.kind: files targets take kind tree/);
    expect(configError('targets:\n  - name: main\n    engine: pg\n    postgres: {}\n    schedules: [{ id: x, cron: "0 2 * * *", fullRehash: true }]\n')).toMatch(/targets\[0\]\.schedules\[0\]\.fullRehash: is only for engine files/);
    expect(configError('targets:\n  - name: main\n    engine: pg\n    postgres: {}\n    files: { source: { kind: ollama, path: /m } }\n')).toMatch(/targets\[0\]\.files: is only for engine files/);
  });
});
