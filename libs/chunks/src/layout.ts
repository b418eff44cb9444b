// Keys of the repository in the bucket (see api.ts for the layout and what each object is for).
import { randomBytes } from 'node:crypto';

export const CHUNKS_ROOT = 'chunks/';
export const PACKS_PREFIX = `${CHUNKS_ROOT}packs/`;
export const INDEX_PREFIX = `${CHUNKS_ROOT}index/`;
export const SESSIONS_PREFIX = `${CHUNKS_ROOT}sessions/`;
export const CONDEMNED_PREFIX = `${CHUNKS_ROOT}gc/condemned-`;

const HEX64 = /^[0-9a-f]{64}$/;
/** Session ids become keys: an artifact id or anything of the same alphabet. */
const SESSION_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;

export const packKey = (packId: string): string => `${PACKS_PREFIX}${packId.slice(0, 2)}/${packId}.pack`;

export function packIdOfKey(key: string): string | undefined {
  if (!key.startsWith(PACKS_PREFIX) || !key.endsWith('.pack')) return undefined;
  const name = key.slice(key.lastIndexOf('/') + 1, -'.pack'.length);
  return HEX64.test(name) && key === packKey(name) ? name : undefined;
}

export const indexKey = (indexId: string): string => `${INDEX_PREFIX}${indexId}.json`;
export const isIndexKey = (key: string): boolean => key.startsWith(INDEX_PREFIX) && key.endsWith('.json');

export function checkSessionId(sessionId: string): void {
  if (!SESSION_ID.test(sessionId) || sessionId.includes('..')) {
    throw new RangeError(`invalid chunk session id ${JSON.stringify(sessionId)}: use letters, digits, "_", "-" and "."`);
  }
}
export const sessionKey = (sessionId: string): string => `${SESSIONS_PREFIX}${sessionId}.json`;

/** Sortable by time, then unique: the newest condemned file is the last one by name. */
export function condemnedKey(at: Date): string {
  const stamp = at.toISOString().replace(/[-:.]/g, '');
  return `${CONDEMNED_PREFIX}${stamp}-${randomBytes(4).toString('hex')}.json`;
}
