// An archiver on a real server for the WAL tests, with test-speed timings; each test passes what
// differs (spool, storage, key, publisher, logger).
import type { PostgresConnection } from '@tidemark/config';
import { startWalReceiver } from '@tidemark/pg';
import { WalArchiver, type WalArchiverOptions } from '../src/wal/archiver.js';
import { pgWalPrimary } from '../src/wal/primary.js';

type Given = Pick<WalArchiverOptions, 'spoolDir' | 'encode' | 'keys' | 'archive' | 'publisher' | 'logger'>;

export function realServerArchiver(conn: PostgresConnection, given: Given, overrides: Partial<WalArchiverOptions> = {}): WalArchiver {
  return new WalArchiver({
    target: 'main',
    slot: 'tidemark_main',
    osUser: 'postgres',
    partialIntervalSeconds: 1,
    maxSlotRetainedMb: 4096,
    maxLagSeconds: 300,
    primary: pgWalPrimary(conn),
    startReceiver: (options) => startWalReceiver(conn, options),
    agent: { id: 'pg-agent-test', version: '0.0.0' },
    tickMs: 500,
    receiverRestartDelayMs: { initial: 100, max: 1000 },
    scanIntervalMs: 300,
    ...given,
    ...overrides,
  });
}
