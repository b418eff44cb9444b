// Commands the command stream will not store (wrong shape, unknown engine, oversized) would
// otherwise vanish without a word: a core subscription watches every command subject and answers
// those with `command.rejected`, so the sender learns why. Stored commands are the agents' job.
import { createHash } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from 'nats';
import {
  COMMAND_ENGINES, COMMANDS_STREAM, CommandRejected, filters, MAX_COMMAND_BYTES, messageIds, parseCommandSubject, subjectMatches, subjects,
  type ErrorInfo,
} from '@tidemark/contracts';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';

export const INTAKE_QUEUE_GROUP = 'tidemark-intake';
const PREVIEW_CHARS = 200;
const MAX_ERROR_MESSAGE = 2000;

/** The first bytes of a payload as printable ASCII; everything else is escaped (\n, \xNN). */
export function payloadPreview(payload: Uint8Array, maxChars = PREVIEW_CHARS): string {
  let out = '';
  for (const byte of payload) {
    let piece: string;
    if (byte === 0x5c) piece = '\\\\';
    else if (byte === 0x0a) piece = '\\n';
    else if (byte === 0x0d) piece = '\\r';
    else if (byte === 0x09) piece = '\\t';
    else if (byte >= 0x20 && byte < 0x7f) piece = String.fromCharCode(byte);
    else piece = `\\x${byte.toString(16).padStart(2, '0')}`;
    if (out.length + piece.length > maxChars) break;
    out += piece;
  }
  return out;
}

// Subject algebra lives with the subjects; re-exported here for the runtime's existing callers.
export { subjectMatches };

/**
 * Publishes a `command.rejected` event for a payload that could not be accepted, with a printable
 * preview of its first bytes. Dedupe id: `rejected:<subject>:<streamSequence or sha256(payload)>`.
 */
export async function rejectCommand(publisher: EventPublisher, subject: string, payload: Uint8Array, error: ErrorInfo, streamSequence?: number): Promise<void> {
  const identity = streamSequence !== undefined ? String(streamSequence) : createHash('sha256').update(payload).digest('hex');
  const event: CommandRejected = {
    schemaVersion: 1,
    occurredAt: new Date().toISOString(),
    subject,
    error: { code: error.code, message: error.message.slice(0, MAX_ERROR_MESSAGE), retryable: error.retryable },
    sizeBytes: payload.length,
    payloadPreview: payloadPreview(payload),
    ...(streamSequence !== undefined ? { streamSequence } : {}),
  };
  await publisher.publish(subjects.commandRejected(), CommandRejected, event, messageIds.commandRejected(subject, identity));
}

/** Bytes the stream counts against max_msg_size: payload plus headers. */
function storedSize(msg: Msg): number {
  const sized = msg as Msg & { size?: () => number };
  if (typeof sized.size === 'function') {
    return sized.size() - msg.subject.length - (msg.reply?.length ?? 0);
  }
  return msg.data.length;
}

/** Why the command stream will not store a message on `subject`, or undefined when it will. */
export function intakeRejection(subject: string, sizeBytes: number): ErrorInfo | undefined {
  if (!COMMANDS_STREAM.subjects.some((filter) => subjectMatches(filter, subject))) {
    const parsed = parseCommandSubject(subject);
    let message: string;
    if ('error' in parsed) message = parsed.error;
    else if (!COMMAND_ENGINES.includes(parsed.engine)) {
      message = `no agent handles engine "${parsed.engine}" yet (supported: ${COMMAND_ENGINES.join(', ')})`;
    } else message = `"${subject}" is not a subject the command stream accepts`;
    return { code: 'COMMAND_UNKNOWN_SUBJECT', message, retryable: false };
  }
  if (sizeBytes > MAX_COMMAND_BYTES) {
    return {
      code: 'COMMAND_TOO_LARGE',
      message: `the command is ${sizeBytes} bytes, more than the ${MAX_COMMAND_BYTES} allowed; send only the fields the command needs`,
      retryable: false,
    };
  }
  return undefined;
}

/**
 * A core-NATS queue subscription (group "tidemark-intake") on backup.requested.> and
 * restore.requested.> that rejects commands the command stream will not store: unknown engine,
 * bad target token, wrong token count, or larger than MAX_COMMAND_BYTES. Valid-shaped commands
 * are left to the agents' consumers.
 */
export function startIntakeWatcher(nc: NatsConnection, publisher: EventPublisher, logger: Logger): Subscription[] {
  const log = logger.child({ component: 'intake' });
  const onMessage = (msg: Msg) => {
    const rejection = intakeRejection(msg.subject, storedSize(msg));
    if (!rejection) return;
    log.warn({ subject: msg.subject, code: rejection.code, reason: rejection.message }, 'rejected a command the command stream will not store');
    rejectCommand(publisher, msg.subject, msg.data, rejection).catch((error: unknown) => {
      log.error({ subject: msg.subject, err: error }, 'could not publish command.rejected; the sender will get no answer');
    });
  };
  return [filters.allBackupCommands, filters.allRestoreCommands].map((filter) =>
    nc.subscribe(filter, {
      queue: INTAKE_QUEUE_GROUP,
      callback: (error, msg) => {
        if (error) {
          log.error({ err: error, filter }, 'intake subscription failed');
          return;
        }
        onMessage(msg);
      },
    }),
  );
}
