// The files-agent's ports; the helpers every agent shares live in @tidemark/agent.
import type { Target } from '@tidemark/config';
import type { FilesSource } from '@tidemark/files';
import type { CorePublisher } from '@tidemark/runtime';
import type { AgentBaseDeps, AgentContext } from '@tidemark/agent';

export interface AgentDeps extends AgentBaseDeps {
  /** The source a target's backups read (a directory, an S3 prefix, an Ollama models directory). */
  readonly sourceFor: (target: Target) => FilesSource;
  /** Progress reports (core NATS): files and bytes done, rate, ETA. */
  readonly progress: CorePublisher;
  /** How often a job publishes its progress (default 2 s). */
  readonly progressIntervalMs?: number;
}

export type Context = AgentContext;
