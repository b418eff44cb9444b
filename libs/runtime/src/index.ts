export { bootstrap, reportStartupFailure, startupFailureText, type ServiceContext, type StartupErrorOutput } from './bootstrap.js';
export { runMain } from './run-main.js';
export { createLogger, REDACT_PATHS, redactUrl, type Logger } from './logger.js';
export { createBreaker, type Breaker, type BreakerOptions } from './breaker.js';
export { retryWithBackoff, backoffDelay, retryDelay, sleep, type RetryOptions } from './retry.js';
export { startHealthServer, overallStatus, type HealthServer, type HealthCheck, type HealthChecks, type CheckResult, type HealthStatus } from './health.js';
export { connectNats, ensureStreams, ensureConsumer, natsConfigFromEnv, DEFAULT_NATS_URL, type NatsConfig } from './nats.js';
export { publishEvent, type EventPublisher, createEventPublisher, createCorePublisher, type CorePublisher } from './publish.js';
export {
  runConsumer, settlementOf, type ConsumerOptions, type RunningConsumer, type Outcome, type Settlement, type FailureReport, type HandlerContext, ack, failed, reject,
} from './consumer.js';
export {
  consumerPolicyOf, decideFailure, isLastAttempt, jobKindOf, retriesMayHelp, DEFAULT_CONSUMER_SETTINGS, type ConsumerPolicy, type ConsumerSettings, type FailureDecision,
} from './consumer-policy.js';
export { startIntakeWatcher, rejectCommand, intakeRejection, payloadPreview, subjectMatches, INTAKE_QUEUE_GROUP } from './intake.js';
export { installShutdown, type Shutdown } from './shutdown.js';
export { readServiceVersion } from './version.js';
export { startSourceMonitor, type SourceMonitor, type SourceMonitorOptions, type SourceProbe, type SourceState } from './sources.js';
export { serveRequests, decodeRequest, encodeReply, requestEncoding, type RequestHandler, type DecodedRequest, type WireEncoding } from './reply.js';
export { reportingBytes } from './progress.js';
export { freePort, portIsHeld } from './ports.js';
