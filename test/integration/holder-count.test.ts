// A shared or semaphore key's group row counts its holders (migration
// 1764130000009_holder_count), so that granting and releasing them does not read the key's
// holder rows, whose dead index entries pile up on a hot key until VACUUM. The count must never
// fall below the live holders: a semaphore would then admit more than its permits.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, type TestFence } from '../support/database.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Attempt {
  acquired: boolean;
  token: string | null;
}

describe('the holder count of a group row', () => {
  let t: TestFence;
  let s: string;
  beforeAll(async () => {
    t = await migratedFence();
    s = `"${t.schema}"`;
  });
  afterAll(async () => {
    await t.cleanup();
  });

  async function attempt(key: string, permits: number, ttlMs: number): Promise<Attempt> {
    const { rows } = await t.pool.query<Attempt>(
      `SELECT acquired, token::text AS token
       FROM ${s}.acquire_lease_batch(ARRAY[$1]::text[], 'owner', ARRAY[$3]::float8[], NULL,
              ARRAY['exclusive'], ARRAY[$2]::int4[], NULL, NULL)`,
      [key, permits, ttlMs],
    );
    return rows[0]!;
  }

  async function release(key: string, tokens: (string | null)[]): Promise<number> {
    const { rows } = await t.pool.query(
      `SELECT * FROM ${s}.release_lease_holders($1::text[], $2::bigint[])`,
      [tokens.map(() => key), tokens],
    );
    return rows.length;
  }

  async function state(key: string): Promise<{ holders: number | null; live: number }> {
    const { rows } = await t.pool.query<{ holders: number | null; live: number }>(
      `SELECT (SELECT l.holders FROM ${s}.leases l WHERE l.key = $1 AND l.token = 0) AS holders,
              (SELECT count(*)::int FROM ${s}.lease_holders h
               WHERE h.key = $1 AND h.expires_at > clock_timestamp()) AS live`,
      [key],
    );
    return rows[0]!;
  }

  it('counts grants and releases, and the last release removes the group row', async () => {
    const key = unique('count');
    const a = await attempt(key, 3, 30_000);
    const b = await attempt(key, 3, 30_000);
    expect([a.acquired, b.acquired]).toEqual([true, true]);
    expect(await state(key)).toEqual({ holders: 2, live: 2 });
    expect(await release(key, [a.token])).toBe(1);
    expect(await state(key)).toEqual({ holders: 1, live: 1 });
    expect(await release(key, [b.token])).toBe(1);
    expect(await state(key)).toEqual({ holders: null, live: 0 });
  });

  it('a holder released after it expired frees no permit of the group that followed it', async () => {
    // Without the rule "only a live holder comes off the count", the late release of the old
    // group's holder takes the new group's count to 0, its row goes with a holder still live,
    // and the next two callers are both let in: three holders of a 2-permit semaphore.
    const key = unique('late');
    const old = await attempt(key, 2, 150);
    expect(old.acquired).toBe(true);
    await sleep(300); // the old group dies with its only holder
    // A reaper pass takes the expired group row but not (yet) its holder row: its two DELETEs
    // have limits of their own, and skip locked rows.
    await t.pool.query(`DELETE FROM ${s}.leases WHERE key = $1 AND token = 0`, [key]);
    const b = await attempt(key, 2, 30_000);
    expect(b.acquired).toBe(true);
    expect(await release(key, [old.token])).toBe(1);
    const c = await attempt(key, 2, 30_000);
    const d = await attempt(key, 2, 30_000);
    expect(c.acquired).toBe(true);
    expect(d.acquired).toBe(false);
    expect((await state(key)).live).toBe(2);
  });

  it('an expired holder still counted does not keep its permit', async () => {
    // The count is an upper bound: at the permits, the live holders are read.
    const key = unique('expired');
    const short = await attempt(key, 2, 150);
    const long = await attempt(key, 2, 30_000);
    expect([short.acquired, long.acquired]).toEqual([true, true]);
    await sleep(300);
    const next = await attempt(key, 2, 30_000);
    expect(next.acquired).toBe(true);
    const over = await attempt(key, 2, 30_000);
    expect(over.acquired).toBe(false);
    expect((await state(key)).live).toBe(2);
  });

  it('never falls below the live holders through grants, releases and expiries in any order', async () => {
    const key = unique('mix');
    const permits = 3;
    const held: { token: string; expires: number }[] = [];
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let step = 0; step < 300; step += 1) {
      const r = random();
      if (r < 0.55) {
        const ttl = random() < 0.2 ? 20 : 30_000;
        const got = await attempt(key, permits, ttl);
        if (got.acquired) held.push({ token: got.token!, expires: performance.now() + ttl });
      } else if (held.length > 0) {
        const [gone] = held.splice(Math.floor(random() * held.length), 1);
        await release(key, [gone!.token]);
      }
      if (step % 25 === 0) await sleep(30);
      const now = await state(key);
      expect(now.live).toBeLessThanOrEqual(permits);
      if (now.holders !== null) expect(now.holders).toBeGreaterThanOrEqual(now.live);
    }
  });

  it('a hot key is granted and released without reading the dead holder rows it leaves', async () => {
    // 1,500 rounds of 16 permits leave 24,000 dead entries in lease_holders' primary key until
    // VACUUM. Reading "the key's live holders" walked all of them; with the count, a round
    // touches a handful of index pages. Index blocks read per round, from pg_statio (flushed
    // on demand, PostgreSQL 15 and later).
    const { rows: version } = await t.pool.query<{ v: number }>(
      "SELECT current_setting('server_version_num')::int AS v",
    );
    const key = unique('hot');
    const client = await t.pool.connect();
    try {
      const round = async () => {
        const { rows } = await client.query<{ token: string }>(
          `SELECT token::text AS token
           FROM ${s}.acquire_lease_batch(array_fill($1::text, ARRAY[16]), 'owner',
                  array_fill(30000::float8, ARRAY[16]), NULL, array_fill('exclusive'::text, ARRAY[16]),
                  array_fill(16, ARRAY[16]), NULL, NULL)
           WHERE acquired`,
          [key],
        );
        expect(rows).toHaveLength(16);
        await client.query(`SELECT * FROM ${s}.release_lease_holders($1::text[], $2::bigint[])`, [
          rows.map(() => key),
          rows.map((r) => r.token),
        ]);
      };
      const blocks = async () => {
        await client.query('SELECT pg_stat_force_next_flush()');
        await client.query('SELECT 1'); // the flush happens when this backend next goes idle
        const { rows } = await t.pool.query<{ n: string }>(
          `SELECT (idx_blks_hit + idx_blks_read)::text AS n FROM pg_statio_user_indexes
           WHERE schemaname = $1 AND indexrelname = 'lease_holders_pkey'`,
          [t.schema],
        );
        return Number(rows[0]!.n);
      };
      for (let i = 0; i < 1_500; i += 1) await round();
      if (version[0]!.v < 150_000) return; // no pg_stat_force_next_flush: the rounds ran, unmeasured
      await sleep(50);
      const before = await blocks();
      for (let i = 0; i < 20; i += 1) await round();
      const perRound = ((await blocks()) - before) / 20;
      // 16 inserts and 16 deletes by (key, token), each a descent of the index; reading the
      // key's holders instead walks hundreds of leaf pages of dead entries per statement.
      console.log('[hot key] index blocks per round', perRound);
      expect(perRound).toBeLessThan(150);
    } finally {
      client.release();
    }
  });
});
