import type { NatsConnection, Subscription } from 'nats';
import type { ErrorInfo } from '@tidemark/contracts';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';
/**
 * Publishes a `command.rejected` event for a payload that could not be accepted, with a printable
 * preview of its first bytes. Dedupe id: `rejected:<subject>:<streamSequence or sha256(payload)>`.
 */
export declare function rejectCommand(publisher: EventPublisher, subject: string, payload: Uint8Array, error: ErrorInfo, streamSequence?: number): Promise<void>;
/**
 * A core-NATS queue subscription (group "tidemark-intake") on backup.requested.> and
 * restore.requested.> that rejects commands the command stream will not store: unknown engine,
 * bad target token, wrong token count, or larger than MAX_COMMAND_BYTES. Valid-shaped commands
 * are left to the agents' consumers.
 */
export declare function startIntakeWatcher(nc: NatsConnection, publisher: EventPublisher, logger: Logger): Subscription[];
