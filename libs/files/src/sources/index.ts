import type { FilesSource, FilesSourceConfig } from './source.js';
import { openDirectorySource } from './directory.js';
import { openOllamaSource } from './ollama.js';
import { openS3Source } from './s3.js';

export { inspectOllamaStore } from './ollama.js';
export type { OllamaInspection } from './source.js';

/** The source a files target's configuration names. Nothing is read until `entries()` is iterated. */
export function openSource(config: FilesSourceConfig): FilesSource {
  switch (config.kind) {
    case 'directory':
      return openDirectorySource(config);
    case 's3':
      return openS3Source(config);
    case 'ollama':
      return openOllamaSource(config.path);
  }
}
