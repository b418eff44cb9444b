import { defineConfig } from 'vitest/config';

// One test command runs everything: unit tests beside each package and the end-to-end suites.
// Integration suites start real servers (NATS, PostgreSQL, an S3 endpoint) through @tidemark/testkit.
export default defineConfig({
  test: {
    include: ['libs/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'cli/test/**/*.test.ts', 'tests/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
