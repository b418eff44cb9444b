// Progress of a backup or restore under --wait: the agent publishes JobProgress on core NATS
// every few seconds; the CLI shows it on stderr, as one updating line on a terminal and a line
// every 10 s otherwise (logs, CI), so stdout keeps only the request's own lines.
import type { NatsConnection, Subscription } from 'nats';
import { JobProgress, decode, parseMessage, subjects, type Engine } from '@tidemark/contracts';
import { formatBytes } from '../format.js';

/** Where progress goes: stderr, and whether it is a terminal (then the line is redrawn in place). */
export interface ProgressOutput {
  readonly isTTY: boolean;
  write(raw: string): void;
}

export const PLAIN_PROGRESS_INTERVAL_MS = 10_000;

/** "1m05s", "2h03m", "42s". */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line: "backup: 1234/10000 files, 1.2 GiB of 5.0 GiB (24%), 85 MiB/s, ETA 45s: cases/2024/x.pdf". */
export function formatProgress(p: JobProgress, maxWidth = 160): string {
  const files = `${p.filesDone}${p.filesTotal !== undefined ? `/${p.filesTotal}` : ''} files`;
  const percent = p.bytesTotal ? ` (${Math.min(100, Math.floor((p.bytesDone / p.bytesTotal) * 100))}%)` : '';
  const bytes = `${formatBytes(p.bytesDone)}${p.bytesTotal !== undefined ? ` of ${formatBytes(p.bytesTotal)}` : ''}${percent}`;
  const eta = p.etaSeconds !== undefined ? `, ETA ${formatEta(p.etaSeconds)}` : '';
  const line = `${p.action}: ${files}, ${bytes}, ${formatBytes(p.bytesPerSecond)}/s${eta}`;
  if (p.current === undefined) return line;
  const room = maxWidth - line.length - 2;
  if (room < 10) return line;
  const current = p.current.length <= room ? p.current : `…${p.current.slice(p.current.length - room + 1)}`;
  return `${line}: ${current}`;
}

export interface ProgressDisplay {
  show(progress: JobProgress): void;
  /** Clears a line drawn in place, before other output is printed (the next update draws it again). */
  interrupt(): void;
  /** Ends the display: the terminal line is cleared. */
  finish(): void;
}

export function progressDisplay(output: ProgressOutput, now: () => number = Date.now, intervalMs = PLAIN_PROGRESS_INTERVAL_MS): ProgressDisplay {
  let drawn = false;
  let lastPlainAt: number | undefined;
  const clear = () => {
    if (!drawn) return;
    output.write('\r\x1b[2K');
    drawn = false;
  };
  return {
    show(progress) {
      if (output.isTTY) {
        output.write(`\r\x1b[2K${formatProgress(progress)}`);
        drawn = true;
        return;
      }
      const at = now();
      if (lastPlainAt !== undefined && at - lastPlainAt < intervalMs) return;
      lastPlainAt = at;
      output.write(`${formatProgress(progress)}\n`);
    },
    interrupt: clear,
    finish: clear,
  };
}

/** Subscribes to the request's progress (other requests on the same target are not shown). */
export function followProgress(nc: NatsConnection, action: JobProgress['action'], engine: Engine, target: string, requestId: string, display: ProgressDisplay): Subscription {
  return nc.subscribe(subjects.progress(action, engine, target), {
    callback: (error, msg) => {
      if (error) return;
      let progress: JobProgress;
      try {
        progress = parseMessage(JobProgress, decode(msg.data, msg.headers));
      } catch {
        return; // a malformed progress message only costs a progress line
      }
      if (progress.requestId === requestId) display.show(progress);
    },
  });
}
