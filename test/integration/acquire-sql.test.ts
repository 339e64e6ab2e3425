// acquire_leases has two paths — one key (the common case) and a set-based one for coalesced
// batches. Both must follow the same rules; each case below runs through both.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, type TestFence } from '../support/database.js';

interface Row {
  key: string;
  acquired: boolean;
  token: string | null;
  expires_at: Date | null;
  db_now: Date;
}

describe.each([
  { path: 'one key', extra: [] as string[] },
  { path: 'a batch', extra: ['bystander'] },
])('acquire_leases, $path', ({ extra }) => {
  let t: TestFence;
  let n = 0;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  /** A fresh key per case, and a fresh bystander so the batch path is really a batch. */
  const fresh = () => `k${(n += 1)}`;

  async function acquire(key: string, ttlMs: number, client: pg.Pool | pg.PoolClient = t.pool) {
    const keys = [key, ...extra.map((e) => `${e}${n}-${Math.random()}`)];
    const { rows } = await client.query<Row>(
      `SELECT key, acquired, token::text AS token, expires_at, db_now
       FROM "${t.schema}".acquire_leases($1::text[], 'owner', $2::float8[], NULL)`,
      [keys, keys.map(() => ttlMs)],
    );
    const row = rows.find((r) => r.key === key);
    expect(row).toBeDefined();
    return row!;
  }

  it('takes a free key with a token', async () => {
    const row = await acquire(fresh(), 30_000);
    expect(row.acquired).toBe(true);
    expect(BigInt(row.token!)).toBeGreaterThan(0n);
    expect(row.expires_at!.getTime()).toBeGreaterThan(row.db_now.getTime());
  });

  it('refuses a live key and reports the holder’s expiry', async () => {
    const key = fresh();
    const first = await acquire(key, 30_000);
    const second = await acquire(key, 30_000);
    expect(second.acquired).toBe(false);
    expect(second.token).toBeNull();
    expect(second.expires_at!.getTime()).toBe(first.expires_at!.getTime());
  });

  it('takes an expired key over with a larger token', async () => {
    const key = fresh();
    const first = await acquire(key, 50);
    await new Promise((r) => setTimeout(r, 120));
    const second = await acquire(key, 30_000);
    expect(second.acquired).toBe(true);
    expect(BigInt(second.token!)).toBeGreaterThan(BigInt(first.token!));
  });

  it('reports an expired key whose row another transaction holds as busy, without waiting', async () => {
    const key = fresh();
    const first = await acquire(key, 50);
    await new Promise((r) => setTimeout(r, 120));
    const writer = await t.pool.connect();
    try {
      // A stale holder's guarded write in progress: is_current takes FOR SHARE on the row.
      await writer.query('BEGIN');
      await writer.query(`SELECT 1 FROM "${t.schema}".leases WHERE key = $1 FOR SHARE`, [key]);
      const started = performance.now();
      const busy = await acquire(key, 30_000);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(busy.acquired).toBe(false);
      // Busy is told apart from live by an expiry that has passed.
      expect(busy.expires_at!.getTime()).toBeLessThanOrEqual(busy.db_now.getTime());
      await writer.query('COMMIT');
      const after = await acquire(key, 30_000);
      expect(after.acquired).toBe(true);
      expect(BigInt(after.token!)).toBeGreaterThan(BigInt(first.token!));
    } finally {
      await writer.query('ROLLBACK').catch(() => {});
      writer.release();
    }
  });

  it('serialises with another acquirer of the same key: it waits for it, then sees its lease', async () => {
    const key = fresh();
    const other = await t.pool.connect();
    try {
      await other.query('BEGIN');
      const held = await acquire(key, 30_000, other);
      expect(held.acquired).toBe(true);
      const pending = acquire(key, 30_000);
      await new Promise((r) => setTimeout(r, 200));
      await other.query('COMMIT');
      const row = await pending;
      expect(row.acquired).toBe(false);
      expect(row.expires_at!.getTime()).toBe(held.expires_at!.getTime());
    } finally {
      await other.query('ROLLBACK').catch(() => {});
      other.release();
    }
  });
});
