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
    globalSetup: ['test/setup/global-setup.ts'],
  },
});
