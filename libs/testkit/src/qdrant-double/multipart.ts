// A streaming multipart/form-data reader: it writes one named file field to a writable as the
// bytes arrive (with backpressure) and never holds more than a chunk and a boundary in memory.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { badRequest } from './errors.js';

const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** The boundary of a `multipart/form-data; boundary=...` content type, or a 400. */
export function multipartBoundary(contentType: string | undefined): string {
  const match = /^multipart\/form-data\s*;.*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw badRequest('Content type error: expected multipart/form-data with a boundary');
  return boundary;
}

async function write(out: Writable, chunk: Buffer): Promise<void> {
  if (chunk.length === 0) return;
  if (!out.write(chunk)) await once(out, 'drain');
}

/**
 * Reads `body` and streams the content of the part named `field` into `out` (then ends it).
 * Other parts are skipped. Throws a 400 when the field is missing or the body is malformed.
 */
export async function readMultipartField(body: AsyncIterable<Buffer>, boundary: string, field: string, out: Writable): Promise<void> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // The body starts with "--boundary" (no CRLF before it); pretend one was there.
  let buffer: Buffer = CRLF;
  type State = 'preamble' | 'headers' | 'body' | 'done';
  let state = 'preamble' as State;
  // `state` changes inside step(); read it through this so TypeScript does not narrow it.
  const finished = (): boolean => state === 'done';
  let capturing = false;
  let found = false;

  const step = async (final: boolean): Promise<void> => {
    for (;;) {
      if (state === 'preamble') {
        const at = buffer.indexOf(delimiter);
        if (at < 0) {
          buffer = buffer.subarray(Math.max(0, buffer.length - delimiter.length));
          return;
        }
        buffer = buffer.subarray(at + delimiter.length);
        state = 'headers';
      }
      if (state === 'headers') {
        // After a delimiter: "--" ends the body, otherwise CRLF and the part's headers.
        if (buffer.length < 2) return;
        if (buffer[0] === 0x2d && buffer[1] === 0x2d) {
          state = 'done';
          return;
        }
        const end = buffer.indexOf(HEADER_END);
        if (end < 0) {
          if (buffer.length > MAX_HEADER_BYTES) throw badRequest('Multipart error: part headers are too large');
          return;
        }
        const headers = buffer.subarray(0, end).toString('utf8');
        buffer = buffer.subarray(end + HEADER_END.length);
        const name = /content-disposition:[^\r\n]*;\s*name="([^"]*)"/i.exec(headers)?.[1];
        capturing = name === field && !found;
        if (capturing) found = true;
        state = 'body';
      }
      if (state === 'body') {
        const at = buffer.indexOf(delimiter);
        if (at < 0) {
          // Keep enough of the tail to recognise a delimiter split across chunks.
          const keep = final ? 0 : delimiter.length - 1;
          const emit = buffer.subarray(0, Math.max(0, buffer.length - keep));
          if (capturing) await write(out, emit);
          buffer = buffer.subarray(emit.length);
          return;
        }
        if (capturing) await write(out, buffer.subarray(0, at));
        if (capturing) {
          out.end();
          await once(out, 'finish');
          capturing = false;
        }
        buffer = buffer.subarray(at + delimiter.length);
        state = 'headers';
      }
      if (state === 'done') return;
    }
  };

  for await (const chunk of body) {
    if (finished()) continue; // drain the epilogue
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    await step(false);
  }
  if (!finished()) {
    await step(true);
    if (!finished()) throw badRequest('Multipart error: the body ended before the closing boundary');
  }
  if (!found) throw badRequest(`Multipart error: no \`${field}\` field in the form`);
}
