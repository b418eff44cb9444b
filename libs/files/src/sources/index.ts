// Owned by the snapshot side. Stubs keep the final signatures.
import { TidemarkError } from '@tidemark/contracts';
import type { FilesSource, FilesSourceConfig } from './source.js';
import type { OllamaModel } from '@tidemark/contracts';

export function openSource(config: FilesSourceConfig): FilesSource {
  void config;
  throw new TidemarkError('INTERNAL', 'not implemented yet');
}

export interface OllamaInspection {
  readonly models: readonly OllamaModel[];
  readonly blobs: number;
  /** Blobs whose content does not hash to their name ("sha256-<hex>" file names). */
  readonly corruptBlobs: readonly string[];
  /** Layers (digests) a manifest names that have no blob. */
  readonly missingLayers: readonly { readonly model: string; readonly digest: string }[];
}

/** Reads an Ollama models directory: inventory from manifests, and (with `hashBlobs`) every blob checked against its name. */
export function inspectOllamaStore(path: string, options: { hashBlobs: boolean }): Promise<OllamaInspection> {
  void path; void options;
  return Promise.reject(new TidemarkError('INTERNAL', 'not implemented yet'));
}
