import { defineConfig } from 'vitest/config';

// unit: no database. integration: a real PostgreSQL (see test/support/global-setup.ts), files in
// parallel, each in its own schema. faults: kills, pauses and stalls whose timing must not
// compete with other files, so they run after the rest, one file at a time.
// The global setup is the root's only (projects do not extend the root), so the test server
// starts once per run and every project reads its URL through `inject`.
const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  teardownTimeout: 60_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          maxWorkers: 2,
        },
      },
      {
        test: {
          ...shared,
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          // Failover needs the PostgreSQL 15 binaries and minutes: `npm run test:failover`;
          // PgBouncer needs its package: `npm run test:pooler`.
          exclude: ['test/faults/replication/**', 'test/faults/pooler/**'],
          sequence: { groupOrder: 2 },
          maxWorkers: 1,
        },
      },
    ],
  },
});
