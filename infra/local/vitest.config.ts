import { defineConfig } from 'vitest/config';

// These tests start real redis-server and nginx processes: give hooks room, but keep every wait bounded.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
