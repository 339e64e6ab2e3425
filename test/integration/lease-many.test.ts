// One process holding thousands of auto-renewed leases: acquisitions share statements, and
// renewal costs one statement per tick for all of them, not one per lease.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingFence } from '../support/counting-fence.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('many leases in one process', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('holds 10,000 auto-renewed leases with one renewal statement per tick', async () => {
    const counted = countingFence(t.schema, 6);
    const fence = counted.fence;
    try {
      const keys = Array.from({ length: 10_000 }, (_, i) => `many-${i}`);
      const leases = await Promise.all(
        // A TTL a loaded 2-core CI machine (other test files beside this one) can renew 10,000
        // leases within: at 3 s, a renewal there once missed its 1.7 s of slack.
        keys.map((key) => fence.tryLease(key, { ttlMs: 6_000, autoRenew: true })),
      );
      expect(leases.every((l) => l !== null)).toBe(true);
      const acquires = counted.calls('acquire_leases');
      expect(acquires).toBeGreaterThan(0);
      expect(acquires).toBeLessThanOrEqual(60);

      // 2–3 renewal intervals (every 2 s); unrenewed, the leases would have 0.5 s left.
      await sleep(5_500);
      const renewals = counted.calls('renew_leases');
      expect(renewals).toBeGreaterThanOrEqual(2);
      expect(renewals).toBeLessThanOrEqual(12);
      // Every lease is still held; a lost one says why (its signal's reason).
      const lost = leases.filter((l) => l!.signal.aborted);
      expect(lost.length, `lost ${lost.length}: ${String(lost[0]?.signal.reason)}`).toBe(0);
      const { rows } = await t.pool.query(
        `SELECT count(*)::int AS n, min(expires_at) > clock_timestamp() + interval '1 second' AS fresh
         FROM "${t.schema}".leases WHERE key LIKE 'many-%'`,
      );
      expect(rows[0]).toEqual({ n: 10_000, fresh: true });

      // The releases meet rows someone else has locked for a moment (as a renewal of all of
      // them does): the busy ones still share statements, waiting together.
      const locker = await t.pool.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(`SELECT 1 FROM "${t.schema}".leases WHERE key LIKE 'many-%' FOR UPDATE`);
        const releasing = Promise.all(leases.map((l) => l!.release()));
        await sleep(300);
        await locker.query('COMMIT');
        const released = await releasing;
        expect(released.every(Boolean)).toBe(true);
      } finally {
        locker.release();
      }
      expect(counted.calls('release_leases')).toBeLessThanOrEqual(30);
      console.log(`[many leases] statements: ${JSON.stringify(counted.counts())}`);
    } finally {
      await counted.close();
    }
  });
});
