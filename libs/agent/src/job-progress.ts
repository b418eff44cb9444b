// Progress of a long files job for people (the CLI's files and bytes done, rate, ETA): a
// JobProgress on core NATS at most every `intervalMs` while the job moves. Every movement is also
// the job's liveness (the consumer runner's stall window), so a hung read stops both.
import { JobProgress, SCHEMA_VERSION, subjects, type Engine } from '@tidemark/contracts';
import type { CorePublisher } from '@tidemark/runtime';

export interface JobProgressOptions {
  readonly publisher: CorePublisher;
  readonly action: JobProgress['action'];
  readonly engine: Engine;
  readonly target: string;
  readonly requestId: string;
  readonly artifactId?: string;
  /** Known or estimated totals (a backup estimates them from its parent snapshot). */
  readonly totals?: { readonly files?: number | undefined; readonly bytes?: number | undefined };
  readonly clock: () => Date;
  /** The job moved: the runner's liveness. */
  readonly onMove: (what: string) => void;
  /** Default 2 s. */
  readonly intervalMs?: number;
}

export interface JobProgressReporter {
  update(progress: { readonly filesDone: number; readonly bytesDone: number; readonly current?: string | undefined }): void;
  /** Publishes the last state now (the end of the job). */
  flush(): void;
}

export function jobProgress(options: JobProgressOptions): JobProgressReporter {
  const interval = options.intervalMs ?? 2000;
  const started = options.clock().getTime();
  let published = started;
  let last: { filesDone: number; bytesDone: number; current?: string | undefined } = { filesDone: 0, bytesDone: 0 };
  const publish = (now: number): void => {
    published = now;
    const seconds = Math.max(0.001, (now - started) / 1000);
    const bytesPerSecond = last.bytesDone / seconds;
    const { files, bytes } = options.totals ?? {};
    const etaSeconds = bytes !== undefined && bytesPerSecond > 0 ? Math.max(0, bytes - last.bytesDone) / bytesPerSecond : undefined;
    options.publisher.publish(subjects.progress(options.action, options.engine, options.target), JobProgress, {
      schemaVersion: SCHEMA_VERSION,
      engine: options.engine,
      target: options.target,
      requestId: options.requestId,
      ...(options.artifactId === undefined ? {} : { artifactId: options.artifactId }),
      action: options.action,
      occurredAt: new Date(now).toISOString(),
      filesDone: last.filesDone,
      ...(files === undefined ? {} : { filesTotal: files }),
      bytesDone: last.bytesDone,
      ...(bytes === undefined ? {} : { bytesTotal: bytes }),
      bytesPerSecond,
      ...(etaSeconds === undefined ? {} : { etaSeconds }),
      ...(last.current === undefined ? {} : { current: last.current.slice(0, 4096) }),
    });
  };
  return {
    update(progress) {
      last = progress;
      options.onMove(`${progress.filesDone} files, ${progress.bytesDone} bytes`);
      const now = options.clock().getTime();
      if (now - published >= interval) publish(now);
    },
    flush() {
      publish(options.clock().getTime());
    },
  };
}
