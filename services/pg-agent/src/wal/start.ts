// Builds one WalArchiver per pg target with `wal.enabled`, from the config and the agent's ports.
// Used by main.ts; kept apart so the wiring can be tested without NATS.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TidemarkError } from '@tidemark/contracts';
import { effectiveTarget, walSlotOf, walTargets, type TidemarkConfig } from '@tidemark/config';
import { startWalReceiver } from '@tidemark/pg';
import { defaultCompression, type KeyRing } from '@tidemark/pipeline';
import type { EventPublisher } from '@tidemark/runtime';
import type { WalArchive } from '@tidemark/storage';
import { WalArchiver } from './archiver.js';
import type { ArchiverLogger } from './monitor.js';
import { pgWalPrimary } from './primary.js';

export interface WalArchivingDeps {
  readonly config: TidemarkConfig;
  readonly keys: KeyRing;
  readonly archive: WalArchive;
  readonly publisher: EventPublisher;
  readonly agent: { readonly id: string; readonly version: string };
  readonly logger: ArchiverLogger;
  readonly clock?: () => Date;
  readonly env?: NodeJS.ProcessEnv;
}

export interface WalArchivingSetup {
  readonly archivers: WalArchiver[];
  /** Targets whose archiving cannot start with this config (reported, not fatal for the agent). */
  readonly refused: { readonly target: string; readonly error: TidemarkError }[];
}

/** The spool of one target: <pg.workDir>/wal/<target>. */
export const walSpoolDir = (config: TidemarkConfig, target: string): string => join(config.pg.workDir, 'wal', target);

/**
 * Creates the archivers (not started). `<workDir>/wal` is created traversable (0711): pg_receivewal
 * runs as pg.osUser and must reach its spool below it.
 */
export async function createWalArchivers(deps: WalArchivingDeps): Promise<WalArchivingSetup> {
  const env = deps.env ?? process.env;
  const archivers: WalArchiver[] = [];
  const refused: { target: string; error: TidemarkError }[] = [];
  const targets = walTargets(deps.config);
  if (targets.length > 0) await mkdir(join(deps.config.pg.workDir, 'wal'), { recursive: true, mode: 0o711 });
  for (const target of targets) {
    const conn = target.postgres;
    const wal = target.wal;
    if (conn === undefined || wal === undefined) {
      refused.push({ target: target.name, error: new TidemarkError('CONFIG_INVALID', `target "${target.name}" enables wal archiving but has no postgres connection`) });
      continue;
    }
    const settings = effectiveTarget(deps.config, target);
    if (settings.encrypt && deps.keys.current === undefined) {
      refused.push({
        target: target.name,
        error: new TidemarkError('CONFIG_INVALID', `target "${target.name}" requires encryption but no key is configured, so its WAL cannot be archived; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`),
      });
      continue;
    }
    archivers.push(
      new WalArchiver({
        target: target.name,
        slot: walSlotOf(target),
        spoolDir: walSpoolDir(deps.config, target.name),
        osUser: deps.config.pg.osUser,
        partialIntervalSeconds: wal.partialIntervalSeconds,
        maxSlotRetainedMb: wal.maxSlotRetainedMb,
        maxLagSeconds: wal.maxLagSeconds,
        encode: {
          compression: settings.compression ?? defaultCompression(),
          ...(settings.compressionLevel !== undefined ? { compressionLevel: settings.compressionLevel } : {}),
          ...(settings.encrypt && deps.keys.current ? { key: deps.keys.current } : {}),
        },
        keys: deps.keys,
        archive: deps.archive,
        publisher: deps.publisher,
        primary: pgWalPrimary(conn, env),
        startReceiver: (options) => startWalReceiver(conn, { ...options, env }),
        agent: deps.agent,
        logger: deps.logger,
        ...(deps.clock ? { clock: deps.clock } : {}),
      }),
    );
  }
  return { archivers, refused };
}
