// Streaming pipeline: source → compression → optional encryption → sha256 → sink, and back.
// API is fixed (other packages code against it); implementation lives in the sibling files.
export { loadKeyRing, keyIdOf, keyRingOf, keyRingFromConfig, type EncryptionKey, type EncryptionSettings, type KeyRing } from './keys.js';
export { encodeStream, type EncodeOptions, type EncodeSummary, type EncodedStream } from './encode.js';
export { encodeBytes, type EncodedBytes } from './bytes.js';
export { decodeStream, decodeCommitted, type DecodeExpectations, type CommittedData } from './decode.js';
export { zstdAvailable, defaultCompression, effectiveCompression } from './compression.js';
export { DEFAULT_CHUNK_SIZE } from './chunked-aead.js';
export { firstCause, isTeardownError, settleFirstCause } from './teardown.js';
export { stallDetector, stallTransform, watchForStall, stalledError, formatSeconds, type StallOptions } from './stall.js';
export type { Stage } from './stages.js';
export { sha256OfStream } from './digest.js';
