import { defineConfig } from 'vitest/config';

// The integration test starts its own stack (Redis, API, worker, nodes, nginx): one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
