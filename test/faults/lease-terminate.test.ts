// Losing connections is not losing the lease: with every backend of the holder terminated,
// again and again, the lease stays current and auto-renewal carries on over new connections.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('a holder whose connections are terminated', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('keeps its lease current and renewing', async () => {
    const appName = `holder_${t.schema}`;
    const errors: unknown[] = [];
    const fence = t.another({ applicationName: appName, onError: (e) => errors.push(e) });
    const lease = await fence.lease('kept', { ttlMs: 3_000, autoRenew: true });
    const first = lease.expiresAt.getTime();
    const admin = new pg.Client({ connectionString: testUrl() });
    await admin.connect();
    let killed = 0;
    try {
      for (let i = 0; i < 8; i += 1) {
        await sleep(350);
        const { rows } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`,
          [`${appName}%`],
        );
        killed += rows.length;
        expect(lease.signal.aborted).toBe(false);
        expect(await t.fence.isCurrent('kept', lease.token)).toBe(true);
      }
    } finally {
      await admin.end();
    }
    await sleep(500);
    expect(killed).toBeGreaterThan(0);
    expect(lease.signal.aborted).toBe(false);
    expect(lease.expiresAt.getTime()).toBeGreaterThan(first + 2_000);
    expect(await t.fence.isCurrent('kept', lease.token)).toBe(true);
    expect(await lease.release()).toBe(true);
    expect(await t.fence.isCurrent('kept', lease.token)).toBe(false);
  });
});
