// The schedule state in a JetStream KV bucket: key `<engine>.<target>.<scheduleId>`, value the
// last fired slot as an ISO string. Writes are compare-and-set on the KV revision so that two
// schedulers do not both advance a key; losing that race is normal and reported as `false`.
import type { JetStreamClient, KV } from 'nats';
import { KV_BUCKETS } from '@tidemark/contracts';
import type { RecordedSlot, ScheduleStateStore } from '../schedule/state-store.js';

/** JetStream's "wrong last sequence" API error: someone else wrote the key first. */
const WRONG_LAST_SEQUENCE = 10071;

const isRevisionConflict = (error: unknown): boolean =>
  (error as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code === WRONG_LAST_SEQUENCE;

export class KvStateStore implements ScheduleStateStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it on first use. */
  static async open(js: JetStreamClient, bucket: string = KV_BUCKETS.schedulerState): Promise<KvStateStore> {
    const kv = await js.views.kv(bucket, { history: 5, description: 'Tidemark scheduler: last fired slot per schedule' });
    return new KvStateStore(kv);
  }

  async read(key: string): Promise<RecordedSlot | undefined> {
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT') return undefined;
    const slot = new Date(entry.string());
    // An unreadable value is treated as absent: the schedule restarts from a fresh baseline.
    if (Number.isNaN(slot.getTime())) return undefined;
    return { slot, revision: entry.revision };
  }

  async record(key: string, slot: Date, expectedRevision: number): Promise<boolean> {
    const value = slot.toISOString();
    try {
      if (expectedRevision === 0) await this.kv.create(key, value);
      else await this.kv.update(key, value, expectedRevision);
      return true;
    } catch (error) {
      if (isRevisionConflict(error)) return false;
      throw error;
    }
  }
}
