// Which kind of test servers the harness starts: `local` processes (the default: PostgreSQL,
// nats-server and an in-process S3 endpoint on this machine) or `containers` (testcontainers,
// for machines with Docker but without the server packages).
export type TestProvider = 'local' | 'containers';

export const TEST_PROVIDER_ENV = 'TIDEMARK_TEST_PROVIDER';

/** Reads TIDEMARK_TEST_PROVIDER; unset or empty means `local`. */
export function testProvider(env: NodeJS.ProcessEnv = process.env): TestProvider {
  const value = (env[TEST_PROVIDER_ENV] ?? '').trim().toLowerCase();
  if (value === '' || value === 'local') return 'local';
  if (value === 'containers') return 'containers';
  throw new Error(`${TEST_PROVIDER_ENV} is "${value}", which is not a test provider: use local or containers`);
}
