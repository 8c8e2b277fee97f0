import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['tidemark-source', 'module', 'node', 'import', 'default'] },
  ssr: {
    resolve: {
      conditions: ['tidemark-source', 'module', 'node', 'import', 'default'],
      externalConditions: ['tidemark-source'],
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // NOTE: two test files at a time, also on two cores: most end-to-end tests wait (processes
    // starting, a Redis outage of a minute, heartbeats, leases), so one at a time left the
    // machine idle for most of the run; timing-sensitive tests are made for a busy machine.
    maxWorkers: 2,
    // NOTE: an unhandled rejection or uncaught error (a job's failure nobody awaited) fails the
    // run, even when every test passed (vitest's default, said here: keep it so). A test keeps
    // the jobs it starts in hand with test/helpers/jobs.ts.
    dangerouslyIgnoreUnhandledErrors: false,
    globalSetup: ['test/setup/global-setup.ts'],
  },
});
