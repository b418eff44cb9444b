// Reading the repository's small objects (headers, index files, markers): bounded, and every
// malformed object is INTEGRITY_FORMAT, never a crash.
import type { Readable } from 'node:stream';
import { PipelineFacts, SchemaError, TidemarkError } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';

/** The whole stream, refusing more than `maxBytes` (a crafted object must not exhaust memory). */
export async function readBounded(stream: Readable, maxBytes: number, what = 'the object'): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let size = 0;
  try {
    for await (const piece of stream) {
      size += (piece as Buffer).length;
      if (size > maxBytes) throw new TidemarkError('INTEGRITY_FORMAT', `${what} is larger than the ${maxBytes} bytes expected; inspect or remove it`);
      pieces.push(piece as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

/** A JSON object by key: undefined when it does not exist (any more: listings race removals). */
export async function readJson(backend: StorageBackend, key: string, maxBytes: number): Promise<unknown> {
  let stream: Readable;
  try {
    stream = await backend.open(key);
  } catch (error) {
    if (error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND') return undefined;
    throw error;
  }
  const bytes = await readBounded(stream, maxBytes, key);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (error) {
    throw new TidemarkError('INTEGRITY_FORMAT', `${key} is not valid JSON; inspect or remove it`, { cause: error });
  }
}

export function formatError(key: string, why: string): TidemarkError {
  return new TidemarkError('INTEGRITY_FORMAT', `${key} ${why}; inspect or remove it (rebuildIndex recreates index files from the packs)`);
}

export function parsePipeline(value: unknown): PipelineFacts | undefined {
  try {
    return PipelineFacts.parse(value);
  } catch (error) {
    if (error instanceof SchemaError) return undefined;
    throw error;
  }
}

export async function saveJson(backend: StorageBackend, key: string, value: unknown): Promise<void> {
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  await backend.save(key, bytes, { size: bytes.length, contentType: 'application/json' });
}

export async function listKeys(backend: StorageBackend, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of backend.list(prefix)) keys.push(object.key);
  return keys;
}
