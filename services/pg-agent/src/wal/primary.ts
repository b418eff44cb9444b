// The archiver's view of the server it archives: one cheap query on one persistent connection,
// reopened after a failure. It answers everything the archiver needs per tick and per upload:
// the current WAL position (for lag), the slot's state (for the flush position and slot
// growth) and the cluster's identity (system identifier, timeline).
import { TidemarkError } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { openClient, parseLsn, toPgError } from '@tidemark/pg';

export interface SlotState {
  readonly active: boolean;
  /** For a physical slot: the position the receiver reported as flushed (undefined: never reserved). */
  readonly restartLsn: bigint | undefined;
  /** reserved | extended | unreserved | lost (PostgreSQL 13+). */
  readonly walStatus: string | undefined;
}

export interface PrimarySample {
  readonly systemIdentifier: string;
  /** The timeline of the latest checkpoint (a promotion shows up here after its checkpoint). */
  readonly timeline: number;
  readonly inRecovery: boolean;
  /** pg_current_wal_lsn() (on a standby: the last WAL position received). */
  readonly currentLsn: bigint;
  /** The replication slot, undefined when it does not exist. */
  readonly slot: SlotState | undefined;
}

/** The port: the archiver depends on this, tests may fake it. */
export interface WalPrimary {
  /** One round trip; reconnects if the last one failed. Throws SOURCE_UNAVAILABLE (retryable) when unreachable. */
  sample(slot: string): Promise<PrimarySample>;
  close(): Promise<void>;
}

type Client = Awaited<ReturnType<typeof openClient>>;

const QUERY_TIMEOUT_MS = 10_000;

// pg_current_wal_lsn() fails on a standby; there the received position is the primary's stand-in.
const SAMPLE_SQL = `
SELECT c.system_identifier::text AS system_identifier,
       k.timeline_id AS timeline,
       pg_is_in_recovery() AS in_recovery,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)::text AS current_lsn,
       s.active, s.restart_lsn::text AS restart_lsn, s.wal_status
  FROM pg_control_system() c
 CROSS JOIN pg_control_checkpoint() k
  LEFT JOIN pg_replication_slots s ON s.slot_name = $1 AND s.slot_type = 'physical'`;

interface SampleRow {
  system_identifier: string;
  timeline: number;
  in_recovery: boolean;
  current_lsn: string | null;
  active: boolean | null;
  restart_lsn: string | null;
  wal_status: string | null;
}

/** A WalPrimary over one persistent connection (application_name tidemark-wal-monitor). */
export function pgWalPrimary(conn: PostgresConnection, env: NodeJS.ProcessEnv = process.env): WalPrimary {
  let client: Client | undefined;
  let connecting: Promise<Client> | undefined;
  let closed = false;

  const connect = (): Promise<Client> => {
    if (client !== undefined) return Promise.resolve(client);
    connecting ??= openClient(conn, conn.database, 'source', env)
      .then(async (opened) => {
        if (closed) {
          await opened.end().catch(() => undefined);
          throw new TidemarkError('SOURCE_UNAVAILABLE', 'the wal monitor connection is closed');
        }
        // Only a label for pg_stat_activity: a failure here shows up on the first sample instead.
        await opened.query(`SET application_name = 'tidemark-wal-monitor'`).catch(() => undefined);
        client = opened;
        return opened;
      })
      .finally(() => {
        connecting = undefined;
      });
    return connecting;
  };

  const drop = async (broken: Client) => {
    if (client === broken) client = undefined;
    await broken.end().catch(() => undefined);
  };

  return {
    async sample(slot) {
      let timer: NodeJS.Timeout | undefined;
      // A server that stops answering (frozen host, half-open TCP) must not stall the ticks (or a shutdown) for long.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TidemarkError('SOURCE_UNAVAILABLE', `the server did not answer the wal monitor within ${QUERY_TIMEOUT_MS} ms; it will be retried`)), QUERY_TIMEOUT_MS);
      });
      // Whichever loses a race may still fail later: that must not become an unhandled rejection.
      timeout.catch(() => undefined);
      const connected = connect();
      connected.catch(() => undefined);
      let current: Client;
      try {
        current = await Promise.race([connected, timeout]);
      } catch (error) {
        clearTimeout(timer);
        throw error;
      }
      try {
        const query = current.query<SampleRow>(SAMPLE_SQL, [slot]);
        query.catch(() => undefined);
        const result = await Promise.race([query, timeout]);
        const row = result.rows[0];
        if (row === undefined || row.current_lsn === null) {
          throw new TidemarkError('SOURCE_UNAVAILABLE', 'the server reported no current WAL position (a standby that has received nothing yet?); it will be retried');
        }
        return {
          systemIdentifier: row.system_identifier,
          timeline: Number(row.timeline),
          inRecovery: row.in_recovery,
          currentLsn: parseLsn(row.current_lsn),
          slot:
            row.active === null
              ? undefined
              : { active: row.active, restartLsn: row.restart_lsn === null ? undefined : parseLsn(row.restart_lsn), walStatus: row.wal_status ?? undefined },
        };
      } catch (error) {
        await drop(current);
        const mapped = toPgError(error, 'source', 'sampling the wal position');
        if ((error as { code?: unknown }).code === '42501') {
          throw new TidemarkError('SOURCE_AUTH_FAILED', `the wal monitor may not call pg_control_system()/pg_control_checkpoint() (${mapped.message}); grant EXECUTE on them (or pg_monitor) to ${conn.user}`, { cause: error });
        }
        throw mapped;
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      closed = true;
      await connecting?.catch(() => undefined);
      if (client !== undefined) await drop(client);
    },
  };
}
