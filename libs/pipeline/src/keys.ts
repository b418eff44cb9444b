export interface EncryptionKey {
  /** Stable id recorded in manifests: a name given by the operator, or "sha256:<first 16 hex of sha256(key)>". */
  readonly id: string;
  /** 32 bytes. Never logged. */
  readonly key: Buffer;
}

export interface KeyRing {
  /** The key new artifacts are encrypted with, if encryption is configured. */
  readonly current: EncryptionKey | undefined;
  /** Looks a key up by the id a manifest names (old keys stay readable after rotation). */
  get(id: string): EncryptionKey | undefined;
}

/** Fingerprint id of a raw key: "sha256:<16 hex>". */
export declare function keyIdOf(key: Buffer): string;

/**
 * Loads keys from the environment:
 * - TIDEMARK_ENCRYPTION_KEY: 32 bytes as 64 hex chars or base64
 * - TIDEMARK_ENCRYPTION_KEY_FILE: a file holding the same (whitespace trimmed)
 * - TIDEMARK_ENCRYPTION_KEY_ID: optional name for the current key
 * - TIDEMARK_ENCRYPTION_OLD_KEY_FILES: optional comma-separated files of older keys (read-only)
 * Throws TidemarkError CONFIG_INVALID with a message naming the variable (never the key).
 */
export declare function loadKeyRing(env: NodeJS.ProcessEnv): KeyRing;
