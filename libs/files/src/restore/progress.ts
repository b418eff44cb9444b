import type { RestoreToDirectoryOptions } from './api.js';

/** Reports at most this often; the last report always goes out. */
const REPORT_EVERY_MS = 250;

/** Files and bytes done, reported to the caller's callback at a bounded rate. */
export class ProgressReporter {
  private filesDone = 0;
  private bytesDone = 0;
  private current: string | undefined;
  private reportedAt = 0;

  constructor(private readonly onProgress: RestoreToDirectoryOptions['onProgress']) {}

  fileDone(bytes: number, path: string): void {
    this.filesDone += 1;
    this.bytesDone += bytes;
    this.current = path;
    if (this.onProgress !== undefined && Date.now() - this.reportedAt >= REPORT_EVERY_MS) this.report();
  }

  finish(): void {
    if (this.onProgress !== undefined) this.report();
  }

  private report(): void {
    this.reportedAt = Date.now();
    this.onProgress?.({ filesDone: this.filesDone, bytesDone: this.bytesDone, ...(this.current === undefined ? {} : { current: this.current }) });
  }
}
