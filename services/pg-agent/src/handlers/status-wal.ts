// status.wal: the live state of this agent's WAL receivers, for `tidemark status` (the archive's
// contents come from the storage service's catalog.wal; only the agent knows whether it streams).
import {
  WalStatusRequest, parseMessage, toErrorInfo, type ErrorInfo, type TidemarkError, type WalReceiverState, type WalStatusReply,
} from '@tidemark/contracts';
import type { WalArchiverStatus } from '../wal/archiver.js';

/** pg-agents answer status.wal in this queue group: one answers each request. */
export const WAL_STATUS_QUEUE_GROUP = 'tidemark-pg-agent-status';

export interface WalStatusSources {
  readonly agent: string;
  readonly archivers: readonly { readonly target: string; status(): WalArchiverStatus }[];
  /** Targets whose archiving the config prevents. */
  readonly refused: readonly { readonly target: string; readonly error: TidemarkError }[];
}

export function receiverState(status: WalArchiverStatus): WalReceiverState {
  return {
    target: status.target,
    state: status.state,
    receiverUp: status.receiverUp,
    ...(status.receiverDownSince !== undefined ? { downSince: status.receiverDownSince } : {}),
    ...(status.lastArchived ? { lastArchivedFile: status.lastArchived.file, lastArchivedAt: status.lastArchived.at } : {}),
    ...(status.lagSeconds !== undefined ? { lagSeconds: Math.round(status.lagSeconds * 1000) / 1000 } : {}),
    ...(status.lagBytes !== undefined ? { lagBytes: status.lagBytes } : {}),
    ...(status.lastError !== undefined ? { lastError: status.lastError } : {}),
  };
}

export function answerWalStatus(request: unknown, sources: WalStatusSources): WalStatusReply | { error: ErrorInfo } {
  try {
    const { target } = parseMessage(WalStatusRequest, request ?? {});
    const wanted = (name: string) => target === undefined || target === name;
    const receivers: WalReceiverState[] = [
      ...sources.archivers.filter((a) => wanted(a.target)).map((a) => receiverState(a.status())),
      ...sources.refused.filter((r) => wanted(r.target)).map((r): WalReceiverState => ({ target: r.target, state: 'refused', receiverUp: false, lastError: r.error.message })),
    ].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
    return { agent: sources.agent, receivers };
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
}
