// All-zero chunks: the chunker cuts runs of zeros at its maximum size, so sparse files and
// preallocated space become the same few chunks, which a restore leaves as holes.
const ZEROS = Buffer.alloc(64 * 1024);

export function isAllZero(bytes: Uint8Array): boolean {
  if (bytes.length === 0 || bytes[0] !== 0 || bytes[bytes.length - 1] !== 0) return false;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < buffer.length; at += ZEROS.length) {
    const end = Math.min(buffer.length, at + ZEROS.length);
    if (!buffer.subarray(at, end).equals(ZEROS.subarray(0, end - at))) return false;
  }
  return true;
}
