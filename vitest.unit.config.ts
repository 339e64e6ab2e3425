import { defineConfig } from 'vitest/config';

// `npm run test:unit`: the unit tests alone, which need no database, so no test server is
// started (vitest.config.ts's global setup would start an embedded PostgreSQL for nothing).
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
