// Where the last fired slot of each schedule is kept. The real store is a JetStream KV bucket
// (adapters/kv-state-store.ts); the in-memory one serves unit tests.

export interface RecordedSlot {
  readonly slot: Date;
  /** Opaque revision for compare-and-set; 0 when the key does not exist yet. */
  readonly revision: number;
}

export interface ScheduleStateStore {
  read(key: string): Promise<RecordedSlot | undefined>;
  /**
   * Records `slot` if the key is still at `expectedRevision` (0: must not exist). Returns false
   * when another scheduler got there first; that is not an error.
   */
  record(key: string, slot: Date, expectedRevision: number): Promise<boolean>;
}

export class InMemoryStateStore implements ScheduleStateStore {
  private readonly entries = new Map<string, RecordedSlot>();

  async read(key: string): Promise<RecordedSlot | undefined> {
    return this.entries.get(key);
  }

  async record(key: string, slot: Date, expectedRevision: number): Promise<boolean> {
    const current = this.entries.get(key)?.revision ?? 0;
    if (current !== expectedRevision) return false;
    this.entries.set(key, { slot, revision: current + 1 });
    return true;
  }
}
