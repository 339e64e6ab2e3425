// Shared leases and semaphores share statements like plain leases do: the attempts of callers of
// one PgFence made at the same time go to the database in one acquire_lease_batch (one commit),
// and their holders' releases in one release_lease_holders. The function itself keeps every rule
// of acquire_lease: the queue's order, the permit bound, the permit count's check, and a durable
// commit whenever something was granted.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermitsMismatchError, type Lease } from '../../src/index.js';
import { countingFence, type CountingFence } from '../support/counting-fence.js';
import { migratedFence, type TestFence } from '../support/database.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

interface BatchRow {
  ord: number;
  acquired: boolean;
  token: string | null;
  waiter: string | null;
  conflict: string | null;
  held_permits: number | null;
}

describe('acquire_lease_batch', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  /** One statement of attempts, each [key, permits, waiter, mode]; queue places last 30 s. */
  async function batch(
    attempts: [string, number | null, string | null, ('shared' | 'exclusive')?][],
    client: pg.Pool | pg.PoolClient = t.pool,
  ): Promise<BatchRow[]> {
    const { rows } = await client.query<BatchRow>(
      `SELECT ord, acquired, token::text AS token, waiter::text AS waiter, conflict, held_permits
       FROM "${t.schema}".acquire_lease_batch($1::text[], 'owner', $2::float8[], NULL, $3::text[],
              $4::int4[], $5::int8[], $6::float8[])`,
      [
        attempts.map((a) => a[0]),
        attempts.map(() => 30_000),
        attempts.map((a) => a[3] ?? 'exclusive'),
        attempts.map((a) => a[1]),
        attempts.map((a) => a[2]),
        attempts.map(() => 30_000),
      ],
    );
    expect(rows.map((r) => r.ord)).toEqual(attempts.map((_, i) => i + 1));
    return rows;
  }

  it('grants up to the permits in the order given, and queues the rest in that order', async () => {
    const key = unique('sem');
    const rows = await batch([
      [key, 2, null],
      [key, 2, null],
      [key, 2, null],
      [key, 2, null],
    ]);
    expect(rows.map((r) => r.acquired)).toEqual([true, true, false, false]);
    expect(new Set(rows.slice(0, 2).map((r) => r.token)).size).toBe(2);
    const [w3, w4] = [BigInt(rows[2]!.waiter!), BigInt(rows[3]!.waiter!)];
    expect(w3).toBeLessThan(w4);
    // One permit frees up: the waiter queued first gets it, even when it asks after the other
    // in the same statement.
    await t.pool.query(
      `SELECT * FROM "${t.schema}".release_lease_holders($1::text[], $2::bigint[])`,
      [[key], [rows[0]!.token]],
    );
    const again = await batch([
      [key, 2, w4.toString()],
      [key, 2, w3.toString()],
    ]);
    expect(again.map((r) => r.acquired)).toEqual([false, true]);
    expect(again[0]!.waiter).toBe(w4.toString());
    expect(BigInt(again[1]!.token!)).toBeGreaterThan(BigInt(rows[1]!.token!));
  });

  it('a shared caller without a place does not pass a writer queued behind a shared waiter granted before it', async () => {
    const key = unique('rw');
    expect((await batch([[key, null, null, 'shared']]))[0]!.acquired).toBe(true);
    const [writer1] = await batch([[key, null, null, 'exclusive']]);
    const [reader] = await batch([[key, null, null, 'shared']]);
    expect(reader!.acquired).toBe(false);
    const [writer2] = await batch([[key, null, null, 'exclusive']]);
    expect(BigInt(reader!.waiter!)).toBeLessThan(BigInt(writer2!.waiter!));
    // The first writer gives up: the queued reader is next, then the second writer.
    await t.pool.query(`SELECT "${t.schema}".leave_lease_queue($1::int8)`, [writer1!.waiter]);
    const rows = await batch([
      [key, null, reader!.waiter, 'shared'],
      [key, null, null, 'shared'],
    ]);
    expect(rows.map((r) => r.acquired)).toEqual([true, false]);
  });

  it('answers another permit count with the count held, beside a grant in the same statement', async () => {
    const key = unique('mismatch');
    const rows = await batch([
      [key, 2, null],
      [key, 3, null],
      [unique('other'), null, null],
    ]);
    expect(rows.map((r) => r.acquired)).toEqual([true, false, true]);
    expect(rows[1]!.conflict).toBe('permits');
    expect(rows[1]!.held_permits).toBe(2);
    expect(rows[1]!.waiter).toBeNull();
  });

  it('commits synchronously when anything was granted, whatever came after it', async () => {
    const key = unique('durable');
    const client = await t.pool.connect();
    try {
      const setting = async (attempts: [string, number | null, string | null][]) => {
        await client.query('BEGIN');
        try {
          await batch(attempts, client);
          const { rows } = await client.query<{ s: string }>(
            `SELECT current_setting('synchronous_commit') AS s`,
          );
          return rows[0]!.s;
        } finally {
          await client.query('COMMIT');
        }
      };
      // A grant, then an attempt that only queues: still a durable commit.
      expect(
        await setting([
          [key, 1, null],
          [key, 1, null],
        ]),
      ).toBe('on');
      // Nothing granted (the permit is held): the queue refresh commits asynchronously.
      expect(await setting([[key, 1, null]])).toBe('off');
    } finally {
      client.release();
    }
  });
});

describe('shared leases and semaphores, coalesced', () => {
  let t: TestFence;
  let counted: CountingFence;
  beforeAll(async () => {
    t = await migratedFence();
    counted = countingFence(t.schema);
  });
  afterAll(async () => {
    await counted.close();
    await t.cleanup();
  });

  const statements = (fns: string[]) => fns.reduce((n, fn) => n + counted.calls(fn), 0);

  it('16 callers of one semaphore in one PgFence share their acquire and release statements', async () => {
    const key = unique('sem16');
    const rounds = 10;
    const acquiresBefore = statements(['acquire_lease', 'acquire_lease_batch']);
    const releasesBefore = statements(['release_lease_holders']);
    let ops = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let r = 0; r < rounds; r += 1) {
          const lease = await counted.fence.lease(key, { permits: 16, ttlMs: 10_000 });
          expect(await lease.release()).toBe(true);
          ops += 1;
        }
      }),
    );
    const acquires = statements(['acquire_lease', 'acquire_lease_batch']) - acquiresBefore;
    const releases = statements(['release_lease_holders']) - releasesBefore;
    console.log(`[coalesced semaphore] ops=${ops} acquires=${acquires} releases=${releases}`);
    expect(ops).toBe(16 * rounds);
    // One statement per caller would be 160 of each.
    expect(acquires).toBeGreaterThan(0);
    expect(acquires).toBeLessThanOrEqual(ops / 4);
    expect(releases).toBeGreaterThan(0);
    expect(releases).toBeLessThanOrEqual(ops / 4);
  });

  it('shared leases coalesce too, and a mismatched count is still refused to its caller alone', async () => {
    const key = unique('shared');
    const before = statements(['acquire_lease', 'acquire_lease_batch']);
    const held = await Promise.all(
      Array.from({ length: 16 }, () => counted.fence.lease(key, { mode: 'shared', ttlMs: 10_000 })),
    );
    expect(statements(['acquire_lease', 'acquire_lease_batch']) - before).toBeLessThanOrEqual(4);
    expect(new Set(held.map((l) => l.token)).size).toBe(16);
    const [refused, granted] = await Promise.all([
      counted.fence.tryLease(key, { permits: 2 }).catch((e: unknown) => e),
      counted.fence.tryLease(key, { mode: 'shared' }),
    ]);
    expect(refused).toBeInstanceOf(PermitsMismatchError);
    expect(granted).not.toBeNull();
    await Promise.all([...held, granted!].map((l) => l.release()));
  });

  it('3 PgFences × 8 callers on 3 permits: never more than 3 holders, 3 reached, tokens unique', async () => {
    const key = unique('sem3');
    const fences = [counted.fence, t.another(), t.another()];
    let inside = 0;
    let most = 0;
    const tokens = new Set<bigint>();
    let grants = 0;
    const until = performance.now() + 3_000;
    await Promise.all(
      fences.flatMap((fence) =>
        Array.from({ length: 8 }, async () => {
          while (performance.now() < until) {
            const lease: Lease = await fence.lease(key, {
              permits: 3,
              ttlMs: 10_000,
              waitMs: 20_000,
            });
            inside += 1;
            most = Math.max(most, inside);
            grants += 1;
            tokens.add(lease.token);
            await new Promise((resolve) => setTimeout(resolve, 5));
            inside -= 1;
            expect(await lease.release()).toBe(true);
          }
        }),
      ),
    );
    console.log(`[3 permits] grants=${grants} most=${most}`);
    expect(grants).toBeGreaterThan(30);
    expect(most).toBe(3);
    expect(tokens.size).toBe(grants);
  });
});
