// The small JSON documents of the bucket (manifests, verification records), read and written
// the same way wherever they live.
import type { Readable } from 'node:stream';
import { SchemaError, TidemarkError, type Schema } from '@tidemark/contracts';
import type { StorageBackend } from './backend.js';

/** Manifests and verification records are small JSON documents; a larger one is not ours. */
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

/** A document by key: undefined when missing; invalid JSON or schema → INTEGRITY_FORMAT. */
export async function readDocument<T>(backend: StorageBackend, schema: Schema<T>, key: string): Promise<T | undefined> {
  let stream: Readable;
  try {
    stream = await backend.open(key);
  } catch (error) {
    if (error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND') return undefined;
    throw error;
  }
  let text: string;
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > MAX_DOCUMENT_BYTES) {
        throw new TidemarkError('INTEGRITY_FORMAT', `${key} is larger than ${MAX_DOCUMENT_BYTES} bytes, too large for a JSON document; inspect or remove the object`);
      }
      chunks.push(chunk as Buffer);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } finally {
    stream.destroy();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TidemarkError('INTEGRITY_FORMAT', `${key} is not valid JSON; inspect or remove the object`, { cause: error });
  }
  try {
    return schema.parse(json);
  } catch (error) {
    if (error instanceof SchemaError) throw new TidemarkError('INTEGRITY_FORMAT', `${key} is not a valid document: ${error.message}`, { cause: error });
    throw error;
  }
}

/** Validates a document before it is written; a producer bug → INTEGRITY_FORMAT. */
export function validate<T>(schema: Schema<T>, value: unknown, what: string): T {
  try {
    return schema.parse(value);
  } catch (error) {
    if (error instanceof SchemaError) throw new TidemarkError('INTEGRITY_FORMAT', `${what} is invalid: ${error.message}; fix the producer`, { cause: error });
    throw error;
  }
}
