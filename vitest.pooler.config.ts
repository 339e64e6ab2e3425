import { defineConfig } from 'vitest/config';

// `npm run test:pooler`: a real PgBouncer (the Debian package, /usr/sbin/pgbouncer) in
// transaction and in session mode, on a spare loopback port, in front of the test server (a
// database of its own per file). Files run one at a time: their processes share the machine's
// CPU and each file's pooler measures what reaches the server.
export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    include: ['test/faults/pooler/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
  },
});
