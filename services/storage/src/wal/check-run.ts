// Runs the WAL archive check for the configured WAL targets and publishes what it finds as
// wal.problem events. A problem that persists is published again each hour (the msgId carries
// the hour), never on every pass; a clean pass publishes nothing.
import { PgBaseSourceFacts, SCHEMA_VERSION, WalProblem, messageIds, subjects, toErrorInfo, type WalFileManifest } from '@tidemark/contracts';
import { parseTimelineHistory, type TimelineSwitch } from '@tidemark/pg';
import type { KeyRing } from '@tidemark/pipeline';
import type { EventPublisher, Logger } from '@tidemark/runtime';
import { openDecoded, readAll, type WalArchive } from '@tidemark/storage';
import type { Catalog, CatalogRecord } from '../catalog/catalog.js';
import { historyToRead, planArchiveCheck, type ArchiveCheckPlan, type ArchiveFinding, type BaseBackupStart } from './check.js';

export interface ArchiveCheckDeps {
  readonly archive: Pick<WalArchive, 'list' | 'readManifest' | 'openData'>;
  readonly catalog: Pick<Catalog, 'select' | 'refresh'>;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  /** Decodes encrypted history files; without it their fork points are inferred from segment names. */
  readonly keyRing?: KeyRing;
  readonly now?: () => Date;
  readonly settleMs?: number;
  readonly followGraceMs?: number;
}

export interface TargetCheckResult extends ArchiveCheckPlan {
  readonly target: string;
  /** Findings published on this pass (the rest were already published this hour). */
  readonly published: number;
}

const HOUR_MS = 3600_000;

/** The msgId of a problem: the same problem in the same hour is stored once by the stream. */
export function problemMsgId(target: string, finding: Pick<ArchiveFinding, 'problem' | 'systemIdentifier' | 'key'>, now: Date): string {
  return messageIds.walArchiveProblem('pg', target, finding, Math.floor(now.getTime() / HOUR_MS));
}

/** The base backups of a target, as the check needs them; manifests without valid base facts are skipped. */
export function baseBackupStarts(records: readonly CatalogRecord[], logger?: Logger): BaseBackupStart[] {
  const out: BaseBackupStart[] = [];
  for (const { manifest } of records) {
    if (manifest.engine !== 'pg' || manifest.kind !== 'base') continue;
    try {
      const facts = PgBaseSourceFacts.parse(manifest.source);
      out.push({ artifactId: manifest.id, systemIdentifier: facts.systemIdentifier, startLsn: facts.startLsn, startTimeline: facts.startTimeline, createdAt: manifest.createdAt });
    } catch (error) {
      logger?.warn({ artifactId: manifest.id, err: error }, 'base backup manifest without valid source facts; not considered for the WAL archive');
    }
  }
  return out;
}

export class ArchiveChecker {
  /** Parsed history files by key+commit time (they never change once committed); null = unreadable. */
  private readonly histories = new Map<string, readonly TimelineSwitch[] | null>();
  /** msgIds this process has published: saves the publish round trip within the hour. */
  private readonly published = new Set<string>();

  constructor(private readonly deps: ArchiveCheckDeps) {}

  /** Checks every target; one target's failure is logged and does not stop the others. */
  async checkAll(targets: readonly string[]): Promise<TargetCheckResult[]> {
    const results: TargetCheckResult[] = [];
    for (const target of targets) {
      try {
        results.push(await this.check(target));
      } catch (error) {
        this.deps.logger.error({ target, error: toErrorInfo(error) }, 'WAL archive check failed; the next pass retries');
      }
    }
    return results;
  }

  async check(target: string): Promise<TargetCheckResult> {
    const { logger } = this.deps;
    const now = this.deps.now?.() ?? new Date();
    // The archive first, then the base backups: a base backup pruned in between (with its WAL)
    // is then already gone from the catalog, so its start is not demanded of a pruned archive.
    const listing = await this.deps.archive.list(target);
    let plan = await this.plan(target, listing, now);
    if (plan.findings.some((f) => f.problem === 'gap')) {
      // Another storage instance may have pruned a base backup and its WAL since this catalog
      // last looked: re-read the base backups from the bucket before calling it a gap.
      for (const record of this.baseRecords(target)) await this.deps.catalog.refresh('pg', target, record.manifest.id);
      plan = await this.plan(target, listing, now);
    }

    this.forgetOldPublications(now);
    let published = 0;
    for (const finding of plan.findings) {
      const msgId = problemMsgId(target, finding, now);
      if (this.published.has(msgId)) continue;
      const event: WalProblem = {
        schemaVersion: SCHEMA_VERSION,
        engine: 'pg',
        target,
        occurredAt: now.toISOString(),
        problem: finding.problem,
        summary: finding.summary,
        systemIdentifier: finding.systemIdentifier,
        ...(finding.missing ? { missing: [...finding.missing] } : {}),
        ...(finding.missingCount !== undefined ? { missingCount: finding.missingCount } : {}),
        details: { ...finding.details },
      };
      await this.deps.publisher.publish(subjects.walProblem('pg', target), WalProblem, event, msgId);
      this.published.add(msgId);
      published += 1;
      logger.warn({ target, problem: finding.problem, systemIdentifier: finding.systemIdentifier, missingCount: finding.missingCount, summary: finding.summary }, 'WAL archive problem');
    }
    if (plan.findings.length === 0) {
      logger.debug({ target, systemIdentifier: plan.systemIdentifier, checked: plan.checked }, 'WAL archive check clean');
    }
    return { target, ...plan, published };
  }

  private baseRecords(target: string): CatalogRecord[] {
    return this.deps.catalog.select({ engine: 'pg', target }).filter((r) => r.manifest.kind === 'base');
  }

  private async plan(target: string, listing: Awaited<ReturnType<WalArchive['list']>>, now: Date): Promise<ArchiveCheckPlan> {
    const baseBackups = baseBackupStarts(this.baseRecords(target), this.deps.logger);
    const wanted = historyToRead(listing, baseBackups);
    const listed = wanted && listing.find((f) => f.systemIdentifier === wanted.systemIdentifier && f.file === wanted.file);
    const newestHistory = wanted && listed ? await this.history(target, wanted.systemIdentifier, wanted.file, listed.modifiedAt) : undefined;
    return planArchiveCheck({
      target, listing, baseBackups, now,
      ...(newestHistory ? { newestHistory } : {}),
      ...(this.deps.settleMs !== undefined ? { settleMs: this.deps.settleMs } : {}),
      ...(this.deps.followGraceMs !== undefined ? { followGraceMs: this.deps.followGraceMs } : {}),
    });
  }

  /** A history file's content, decoded and parsed; undefined when it cannot be read (the check then infers). */
  private async history(target: string, systemIdentifier: string, file: string, modifiedAt: Date): Promise<readonly TimelineSwitch[] | undefined> {
    const cacheKey = `${target}/${systemIdentifier}/${file}@${modifiedAt.getTime()}`;
    const cached = this.histories.get(cacheKey);
    if (cached !== undefined) return cached ?? undefined;
    let parsed: readonly TimelineSwitch[] | null = null;
    try {
      const manifest: WalFileManifest | undefined = await this.deps.archive.readManifest(target, systemIdentifier, file);
      if (manifest) {
        const keys: KeyRing = this.deps.keyRing ?? { current: undefined, get: () => undefined };
        const text = (await readAll(await openDecoded(this.deps.archive, manifest, keys))).toString('utf8');
        parsed = parseTimelineHistory(text);
      }
    } catch (error) {
      const info = toErrorInfo(error);
      // A storage outage is retried next pass; a file we cannot decode stays inferred until it changes.
      if (info.retryable) throw error;
      this.deps.logger.info({ target, systemIdentifier, file, error: info }, 'timeline history file unreadable here; fork points are inferred from segment names');
    }
    this.histories.set(cacheKey, parsed);
    return parsed ?? undefined;
  }

  private forgetOldPublications(now: Date): void {
    const bucket = `:${Math.floor(now.getTime() / HOUR_MS)}`;
    for (const id of this.published) if (!id.endsWith(bucket)) this.published.delete(id);
  }
}
