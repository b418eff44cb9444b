import { createMemoryBackend } from '@tidemark/storage';
import { describeBackendConformance } from './conformance.js';

describeBackendConformance('memory', async () => createMemoryBackend());
