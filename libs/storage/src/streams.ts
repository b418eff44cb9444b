import { Readable } from 'node:stream';
import { decodeCommitted, type CommittedData, type KeyRing } from '@tidemark/pipeline';

/** A save body as a stream (Uint8Array bodies become a one-chunk stream). */
export const toReadable = (body: Readable | Uint8Array): Readable =>
  body instanceof Uint8Array ? Readable.from([Buffer.from(body.buffer, body.byteOffset, body.byteLength)], { objectMode: false }) : body;

/** Collects a stream; only for bounded objects (manifests, verification records, the memory backend, history files, a WAL segment decoded ahead). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

export const emptyStream = (): Readable => Readable.from([], { objectMode: false });

/**
 * Ends a failed save's body with the failure, so whoever produces it (a pipeline) learns the
 * cause rather than a bare abort. A body nobody listens to for errors is destroyed without one:
 * an unheard 'error' event would crash the process.
 */
export function destroyWithCause(body: Readable, cause: unknown): void {
  if (body.listenerCount('error') > 0 && cause instanceof Error) body.destroy(cause);
  else body.destroy();
}

/** Where committed data is read from: the artifact store or the WAL archive. */
export interface CommittedDataSource<M extends CommittedData> {
  openData(manifest: M): Promise<Readable>;
}

/**
 * The decoded (decrypted, decompressed, size- and sha256-checked) bytes of a committed artifact
 * or WAL file. Destroying the decoded stream, or its end, releases the stored one.
 */
export async function openDecoded<M extends CommittedData>(source: CommittedDataSource<M>, manifest: M, keys: KeyRing): Promise<Readable> {
  const stored = await source.openData(manifest);
  const decoded = decodeCommitted(stored, manifest, keys);
  decoded.once('close', () => stored.destroy());
  return decoded;
}
