// aes-256-gcm-chunked-v1: authenticated encryption in independent chunks, so arbitrarily large
// artifacts stream through constant memory and every plaintext byte is released only after its
// chunk's tag verified.
//
// Layout (integers big-endian):
//   header  = "TMKC" | u8 version (1) | u32 chunkSize | u16 keyIdLength | keyId (utf8) | 8-byte random nonce prefix
//   chunk i = u32 ciphertextLength | ciphertext | 16-byte GCM tag
// Every chunk but the last carries exactly chunkSize plaintext bytes; the last carries 0..chunkSize
// (0 only for an empty artifact).
//   nonce(i) = noncePrefix | u32 i                         (12 bytes, unique per artifact and chunk)
//   aad(i)   = header bytes | u32 i | u8 final (1 on the last chunk, else 0)
// Binding the header into every chunk stops key-id or chunk-size tampering; the index stops
// reordering; the final flag makes a cut exactly at a chunk boundary detectable.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TidemarkError } from '@tidemark/contracts';
import type { EncryptionKey, KeyRing } from './keys.js';
import { ByteQueue, toBuffer, type Stage } from './stages.js';

export const MAGIC = Buffer.from('TMKC', 'ascii');
export const FORMAT_VERSION = 1;
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Upper bound on chunk size a header may claim, so a crafted header cannot make us allocate gigabytes. */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
const NONCE_PREFIX_BYTES = 8;
const TAG_BYTES = 16;
const LENGTH_BYTES = 4;
const FIXED_HEADER_BYTES = MAGIC.length + 1 + 4 + 2;
const MAX_KEY_ID_BYTES = 1024;
const MAX_CHUNK_COUNT = 0xffff_ffff;

export interface ChunkHeader {
  readonly keyId: string;
  readonly chunkSize: number;
  readonly noncePrefix: Buffer;
  /** The exact header bytes, bound into every chunk's AAD. */
  readonly bytes: Buffer;
}

export function buildHeader(keyId: string, chunkSize: number, noncePrefix: Buffer = randomBytes(NONCE_PREFIX_BYTES)): ChunkHeader {
  const id = Buffer.from(keyId, 'utf8');
  const bytes = Buffer.alloc(FIXED_HEADER_BYTES + id.length + NONCE_PREFIX_BYTES);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt8(FORMAT_VERSION, 4);
  bytes.writeUInt32BE(chunkSize, 5);
  bytes.writeUInt16BE(id.length, 9);
  id.copy(bytes, FIXED_HEADER_BYTES);
  noncePrefix.copy(bytes, FIXED_HEADER_BYTES + id.length);
  return { keyId, chunkSize, noncePrefix, bytes };
}

export function validateChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new TidemarkError('CONFIG_INVALID', `encryption chunk size must be an integer from 1 to ${MAX_CHUNK_SIZE} bytes`);
  }
}

function nonceOf(header: ChunkHeader, index: number): Buffer {
  const nonce = Buffer.alloc(NONCE_PREFIX_BYTES + 4);
  header.noncePrefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
  return nonce;
}

function aadOf(header: ChunkHeader, index: number, final: boolean): Buffer {
  const trailer = Buffer.alloc(5);
  trailer.writeUInt32BE(index, 0);
  trailer.writeUInt8(final ? 1 : 0, 4);
  return Buffer.concat([header.bytes, trailer]);
}

/** One chunk sealed on its own: its length, ciphertext and tag (see sealInto). */
function seal(header: ChunkHeader, key: Buffer, index: number, final: boolean, plaintext: Buffer): Buffer {
  const sealed = Buffer.allocUnsafe(LENGTH_BYTES + plaintext.length + TAG_BYTES);
  sealInto(sealed, 0, header, key, index, final, plaintext);
  return sealed;
}

/** One chunk sealed into `output` at `at`: u32 length, ciphertext, tag; returns where the next chunk goes. */
function sealInto(output: Buffer, at: number, header: ChunkHeader, key: Buffer, index: number, final: boolean, plaintext: Buffer): number {
  if (index > MAX_CHUNK_COUNT) throw new TidemarkError('INTERNAL', 'artifact too large for the chunk counter: raise the encryption chunk size');
  const cipher = createCipheriv('aes-256-gcm', key, nonceOf(header, index), { authTagLength: TAG_BYTES });
  cipher.setAAD(aadOf(header, index, final));
  at = output.writeUInt32BE(plaintext.length, at);
  at += cipher.update(plaintext).copy(output, at);
  at += cipher.final().copy(output, at);
  return at + cipher.getAuthTag().copy(output, at);
}

/** Returns the plaintext, or null when the tag does not verify. */
function open(header: ChunkHeader, key: Buffer, index: number, final: boolean, ciphertext: Buffer, tag: Buffer): Buffer | null {
  const decipher = createDecipheriv('aes-256-gcm', key, nonceOf(header, index), { authTagLength: TAG_BYTES });
  decipher.setAAD(aadOf(header, index, final));
  decipher.setAuthTag(tag);
  const body = decipher.update(ciphertext);
  try {
    const tail = decipher.final();
    return tail.length === 0 ? body : Buffer.concat([body, tail]);
  } catch {
    return null;
  }
}

export function encryptStage(key: EncryptionKey, chunkSize: number): Stage {
  validateChunkSize(chunkSize);
  return async function* encrypt(source) {
    const header = buildHeader(key.id, chunkSize);
    yield header.bytes;
    const pending = new ByteQueue();
    let index = 0;
    for await (const piece of source) {
      pending.push(toBuffer(piece));
      // Strictly more than one chunk pending: the one sealed now is certainly not the last.
      while (pending.length > chunkSize) yield seal(header, key.key, index++, false, pending.take(chunkSize));
    }
    yield seal(header, key.key, index, true, pending.take(pending.length));
  };
}

/** `plaintext` encrypted at once, byte for byte what encryptStage writes for it as one stream. */
export function encryptBytes(key: EncryptionKey, chunkSize: number, plaintext: Buffer): Buffer {
  validateChunkSize(chunkSize);
  const header = buildHeader(key.id, chunkSize);
  // One output of the exact size, each chunk sealed into its place: a buffer per sealed chunk and
  // a concatenation of them tripled what a small blob allocated.
  const chunks = Math.max(1, Math.ceil(plaintext.length / chunkSize));
  const output = Buffer.allocUnsafeSlow(header.bytes.length + plaintext.length + chunks * (LENGTH_BYTES + TAG_BYTES));
  let at = header.bytes.copy(output, 0);
  let offset = 0;
  let index = 0;
  // As in the stage: a chunk is sealed as not-final only while strictly more than one chunk remains.
  while (plaintext.length - offset > chunkSize) {
    at = sealInto(output, at, header, key.key, index++, false, plaintext.subarray(offset, offset + chunkSize));
    offset += chunkSize;
  }
  sealInto(output, at, header, key.key, index, true, plaintext.subarray(offset));
  return output;
}

export interface DecryptOptions {
  readonly keys: KeyRing;
  /** The key id the manifest recorded; the header must agree. */
  readonly expectedKeyId: string;
  readonly expectedChunkSize: number;
}

export function decryptStage(options: DecryptOptions): Stage {
  return async function* decrypt(source) {
    const pending = new ByteQueue();
    let header: ChunkHeader | undefined;
    let key: Buffer | undefined;
    let index = 0;

    const sealedLength = (): number | undefined => {
      if (pending.length < LENGTH_BYTES) return undefined;
      const length = pending.peekUint32(0);
      if (length > header!.chunkSize) throw formatError(`chunk ${index} claims ${length} bytes, more than the chunk size`);
      return LENGTH_BYTES + length + TAG_BYTES;
    };

    const openNext = (total: number, final: boolean): Buffer => {
      const sealed = pending.take(total);
      const ciphertext = sealed.subarray(LENGTH_BYTES, total - TAG_BYTES);
      const tag = sealed.subarray(total - TAG_BYTES);
      const plaintext = open(header!, key!, index, final, ciphertext, tag);
      if (plaintext !== null) return plaintext;
      throw openFailure(header!, key!, index, final, ciphertext, tag);
    };

    for await (const piece of source) {
      pending.push(toBuffer(piece));
      if (header === undefined) {
        header = tryParseHeader(pending, options);
        if (header === undefined) continue;
        key = options.keys.get(header.keyId)?.key;
        if (key === undefined) throw keyMissing(header.keyId);
      }
      for (;;) {
        const total = sealedLength();
        // Only open a chunk once a byte beyond it exists: then it is certainly not the last.
        if (total === undefined || pending.length <= total) break;
        const plaintext = openNext(total, false);
        index++;
        if (plaintext.length > 0) yield plaintext;
      }
    }

    if (header === undefined) {
      throw new TidemarkError('INTEGRITY_TRUNCATED', 'the encrypted object ends inside its header: the upload was cut short; use another artifact');
    }
    const total = sealedLength();
    if (total === undefined || pending.length < total) {
      throw new TidemarkError('INTEGRITY_TRUNCATED', `the encrypted object ends inside chunk ${index}: the upload was cut short; use another artifact`);
    }
    const plaintext = openNext(total, true);
    if (plaintext.length > 0) yield plaintext;
  };
}

/**
 * A whole stored object decrypted at once: the same checks and errors as decryptStage, with the
 * chunk after the last one known without reading ahead. Returns the plaintext chunks in order.
 */
export function decryptBytes(options: DecryptOptions, stored: Buffer): Buffer[] {
  const pending = new ByteQueue();
  pending.push(stored);
  const header = tryParseHeader(pending, options);
  if (header === undefined) {
    throw new TidemarkError('INTEGRITY_TRUNCATED', 'the encrypted object ends inside its header: the upload was cut short; use another artifact');
  }
  const key = options.keys.get(header.keyId)?.key;
  if (key === undefined) throw keyMissing(header.keyId);
  const plaintexts: Buffer[] = [];
  let offset = stored.length - pending.length;
  let index = 0;
  for (;;) {
    if (stored.length - offset < LENGTH_BYTES) {
      throw new TidemarkError('INTEGRITY_TRUNCATED', `the encrypted object ends inside chunk ${index}: the upload was cut short; use another artifact`);
    }
    const length = stored.readUInt32BE(offset);
    if (length > header.chunkSize) throw formatError(`chunk ${index} claims ${length} bytes, more than the chunk size`);
    const end = offset + LENGTH_BYTES + length + TAG_BYTES;
    if (end > stored.length) {
      throw new TidemarkError('INTEGRITY_TRUNCATED', `the encrypted object ends inside chunk ${index}: the upload was cut short; use another artifact`);
    }
    const final = end === stored.length;
    const ciphertext = stored.subarray(offset + LENGTH_BYTES, end - TAG_BYTES);
    const tag = stored.subarray(end - TAG_BYTES, end);
    const plaintext = open(header, key, index, final, ciphertext, tag);
    if (plaintext === null) throw openFailure(header, key, index, final, ciphertext, tag);
    if (plaintext.length > 0) plaintexts.push(plaintext);
    if (final) return plaintexts;
    offset = end;
    index++;
  }
}

/** Tells "modified or wrong key" apart from "the object is cut or has junk appended", for a chunk whose tag failed. */
function openFailure(header: ChunkHeader, key: Buffer, index: number, final: boolean, ciphertext: Buffer, tag: Buffer): TidemarkError {
  const flipped = open(header, key, index, !final, ciphertext, tag);
  if (flipped !== null && final) {
    return new TidemarkError('INTEGRITY_TRUNCATED', `the encrypted object ends after chunk ${index} without its final chunk: the upload was cut short; use another artifact`);
  }
  if (flipped !== null) return formatError(`unexpected bytes after the final chunk ${index}`);
  return new TidemarkError('INTEGRITY_AUTH_FAILED', `chunk ${index} failed authentication: the key "${header.keyId}" is wrong or the stored bytes were modified`);
}

function tryParseHeader(pending: ByteQueue, options: DecryptOptions): ChunkHeader | undefined {
  if (pending.length < FIXED_HEADER_BYTES) {
    // Fail fast on foreign data instead of waiting for more of it.
    const prefix = pending.peek(Math.min(pending.length, MAGIC.length));
    if (!MAGIC.subarray(0, prefix.length).equals(prefix)) throw formatError('the object does not start with the encryption header');
    return undefined;
  }
  const fixed = pending.peek(FIXED_HEADER_BYTES);
  if (!fixed.subarray(0, MAGIC.length).equals(MAGIC)) throw formatError('the object does not start with the encryption header');
  const version = fixed.readUInt8(4);
  if (version !== FORMAT_VERSION) throw formatError(`unsupported encryption format version ${version}`);
  const chunkSize = fixed.readUInt32BE(5);
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw formatError(`the encryption header claims an invalid chunk size ${chunkSize}`);
  const idLength = fixed.readUInt16BE(9);
  if (idLength === 0 || idLength > MAX_KEY_ID_BYTES) throw formatError('the encryption header has an invalid key id');
  const headerLength = FIXED_HEADER_BYTES + idLength + NONCE_PREFIX_BYTES;
  if (pending.length < headerLength) return undefined;
  const bytes = Buffer.from(pending.take(headerLength));
  const keyId = bytes.subarray(FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + idLength).toString('utf8');
  const noncePrefix = bytes.subarray(FIXED_HEADER_BYTES + idLength);
  if (keyId !== options.expectedKeyId) {
    throw formatError(`the encryption header names key "${keyId}" but the manifest names "${options.expectedKeyId}"`);
  }
  if (chunkSize !== options.expectedChunkSize) {
    throw formatError(`the encryption header chunk size ${chunkSize} differs from the manifest's ${options.expectedChunkSize}`);
  }
  return { keyId, chunkSize, noncePrefix, bytes };
}

export function keyMissing(keyId: string): TidemarkError {
  return new TidemarkError(
    'ENCRYPTION_KEY_MISSING',
    `the artifact is encrypted with key "${keyId}", which is not loaded: add it to TIDEMARK_ENCRYPTION_OLD_KEY_FILES (as ${keyId}=<file> when it is a named key)`,
  );
}

function formatError(detail: string): TidemarkError {
  return new TidemarkError('INTEGRITY_FORMAT', `${detail}: the stored object is corrupt or not a tidemark artifact`);
}
