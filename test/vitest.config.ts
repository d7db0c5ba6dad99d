import { defineConfig } from 'vitest/config';

// System tests start real processes (Redis, nginx, nodes): one file at a time on a 2-core machine.
export default defineConfig({
  test: {
    include: [
      'static/**/*.test.ts',
      'system/**/*.test.ts',
      'deploy/**/*.test.ts',
      'browser/**/*.test.ts',
      'chaos/**/*.test.ts',
    ],
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
