import { defineConfig } from 'vitest/config';

// `npm run test:failover`: a primary and two streaming standbys per file (PostgreSQL 15 from
// /usr/lib/postgresql/15/bin, as root run as the `postgres` user), killed and failed over
// under load. Files run one at a time: each owns the machine's CPU while it measures. The
// mutual-exclusion checker and the fence log live on the ordinary test database (global
// setup), outside the cluster, so they survive what the cluster loses.
export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    include: ['test/faults/replication/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 240_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
  },
});
