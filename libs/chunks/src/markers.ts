// The two small documents that make collection safe without a lock: session markers (a backup
// is running and may deduplicate against what it saw) and the condemned set (packs a collection
// found unreferenced, deleted by a later one if they still are after a grace period).
import type { StorageBackend } from '@tidemark/storage';
import { formatError, listKeys, readJson, saveJson } from './json.js';
import { CONDEMNED_PREFIX, SESSIONS_PREFIX, sessionKey } from './layout.js';

const MAX_MARKER_BYTES = 64 * 1024;
/** Ten million packs would be ~1 GiB: anything larger is not ours. */
const MAX_CONDEMNED_BYTES = 2 ** 30;

export interface SessionMarker {
  readonly sessionVersion: 1;
  readonly sessionId: string;
  readonly startedAt: string;
  readonly refreshedAt: string;
}

export async function writeSessionMarker(backend: StorageBackend, sessionId: string, startedAt: Date, refreshedAt: Date): Promise<void> {
  const marker: SessionMarker = { sessionVersion: 1, sessionId, startedAt: startedAt.toISOString(), refreshedAt: refreshedAt.toISOString() };
  await saveJson(backend, sessionKey(sessionId), marker);
}

export interface ListedSession {
  readonly sessionId: string;
  readonly startedAt: number;
  readonly refreshedAt: number;
}

/**
 * Every session marker. One that cannot be read is taken for a session that started at the epoch
 * and was refreshed when the object was last written: it holds deletions back until it is stale,
 * which errs on the side of keeping data.
 */
export async function listSessions(backend: StorageBackend): Promise<ListedSession[]> {
  const sessions: ListedSession[] = [];
  for await (const object of backend.list(SESSIONS_PREFIX)) {
    const fallback: ListedSession = { sessionId: object.key.slice(SESSIONS_PREFIX.length, -'.json'.length), startedAt: 0, refreshedAt: object.modifiedAt.getTime() };
    let json: Partial<SessionMarker> | undefined;
    try {
      json = (await readJson(backend, object.key, MAX_MARKER_BYTES)) as Partial<SessionMarker> | undefined;
    } catch {
      sessions.push(fallback);
      continue;
    }
    if (json === undefined) continue; // closed while we listed
    const startedAt = Date.parse(String(json?.startedAt));
    const refreshedAt = Date.parse(String(json?.refreshedAt));
    sessions.push(Number.isNaN(startedAt) || Number.isNaN(refreshedAt) ? fallback : { sessionId: fallback.sessionId, startedAt, refreshedAt });
  }
  return sessions;
}

/** packId → when it was condemned (ms since the epoch). */
export type CondemnedSet = ReadonlyMap<string, number>;

interface StoredCondemned {
  readonly condemnedVersion: 1;
  readonly packs: Record<string, string>;
}

export interface LoadedCondemned {
  readonly packs: CondemnedSet;
  /** Every condemned file listed (the newest is the truth; the others are left-overs to remove). */
  readonly keys: readonly string[];
}

/** The newest condemned file's set (each collection writes the whole set, then removes the older files). */
export async function loadCondemned(backend: StorageBackend): Promise<LoadedCondemned> {
  const keys = (await listKeys(backend, CONDEMNED_PREFIX)).sort();
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i]!;
    const json = (await readJson(backend, key, MAX_CONDEMNED_BYTES)) as Partial<StoredCondemned> | undefined;
    if (json === undefined) continue;
    if (json === null || typeof json !== 'object' || json.condemnedVersion !== 1 || typeof json.packs !== 'object' || json.packs === null) throw formatError(key, 'is not a condemned set');
    const packs = new Map<string, number>();
    for (const [packId, at] of Object.entries(json.packs)) {
      const time = Date.parse(at);
      if (Number.isNaN(time)) throw formatError(key, `has no valid time for pack ${packId}`);
      packs.set(packId, time);
    }
    return { packs, keys };
  }
  return { packs: new Map(), keys };
}

export async function writeCondemned(backend: StorageBackend, key: string, packs: CondemnedSet): Promise<void> {
  const stored: StoredCondemned = { condemnedVersion: 1, packs: Object.fromEntries([...packs].map(([packId, at]) => [packId, new Date(at).toISOString()])) };
  await saveJson(backend, key, stored);
}
