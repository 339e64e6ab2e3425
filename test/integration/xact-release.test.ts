import { Kysely, PostgresDialect, sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  InvalidKeyError,
  NotInTransactionError,
  type Lease,
} from '../../src/index.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

interface Db {
  jobs: { id: number; done: number };
}

describe('xactRelease: completion and release in the caller’s transaction', () => {
  let t: TestFence;
  let s: string;
  let db: Kysely<Db>;
  const from = () =>
    sql<{ key: string }>`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}
      WHERE done = 0 ORDER BY id`;
  const idOf = (lease: Lease) => Number(lease.key.slice('job:'.length));
  const leaseRows = async () =>
    (
      await t.pool.query<{ key: string; token: string }>(
        `SELECT key, token::text AS token FROM ${s}.leases ORDER BY key`,
      )
    ).rows;
  const doneIds = async () =>
    (
      await t.pool.query<{ id: number }>(`SELECT id FROM ${s}.jobs WHERE done > 0 ORDER BY id`)
    ).rows.map((r) => r.id);

  beforeAll(async () => {
    t = await migratedFence();
    s = `"${t.schema}"`;
    db = new Kysely<Db>({ dialect: new PostgresDialect({ pool: t.pool }) }).withSchema(t.schema);
    await t.pool.query(`CREATE TABLE ${s}.jobs (id int PRIMARY KEY, done int NOT NULL DEFAULT 0)`);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.pool.query(`DELETE FROM ${s}.leases`);
    await t.pool.query(`TRUNCATE ${s}.jobs`);
    await t.pool.query(`INSERT INTO ${s}.jobs (id) SELECT generate_series(1, 5)`);
  });

  it('commits the work and the release together, on the caller’s connection alone', async () => {
    const leases = await t.fence.claim({ from: from(), limit: 3, ttlMs: 60_000, autoRenew: true });
    expect(leases.map(idOf)).toEqual([1, 2, 3]);
    const client = await t.pool.connect();
    // Nothing but the caller's connection may run a statement meanwhile: one commit, the caller's.
    let pooled = 0;
    const original = t.pool.query.bind(t.pool);
    (t.pool as { query: unknown }).query = (...args: unknown[]) => {
      pooled += 1;
      return (original as (...a: unknown[]) => unknown)(...args);
    };
    const sent: string[] = [];
    const clientQuery = client.query.bind(client);
    (client as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
      sent.push(String(text).split('\n')[0]!.slice(0, 40));
      return (clientQuery as (...a: unknown[]) => unknown)(text, ...rest);
    };
    try {
      await client.query('BEGIN');
      const current = await t.fence.xactRelease(client, leases);
      await client.query(`UPDATE ${s}.jobs SET done = done + 1 WHERE id = ANY($1::int[])`, [
        current.map(idOf),
      ]);
      // Until the commit, the rows are still there for everyone else.
      expect((await original(`SELECT count(*)::int AS n FROM ${s}.leases`)).rows[0].n).toBe(3);
      await client.query('COMMIT');
      expect(current).toEqual(leases);
    } finally {
      (t.pool as { query: unknown }).query = original;
      client.release();
    }
    expect(pooled).toBe(0);
    expect(sent).toHaveLength(4); // BEGIN, xact_release, the caller's UPDATE, COMMIT
    expect(await leaseRows()).toEqual([]);
    expect(await doneIds()).toEqual([1, 2, 3]);
    for (const lease of leases) {
      expect(lease.signal.aborted).toBe(false);
      // Released by the transaction: release() releases nothing more, and says so.
      await expect(lease.release()).resolves.toBe(false);
      await expect(lease.extend()).rejects.toThrow(/released/i);
    }
  });

  it('on rollback leaves the job undone and the lease held until it expires', async () => {
    const ttlMs = 1_500;
    const [lease] = await t.fence.claim({ from: from(), limit: 1, ttlMs });
    const other = t.another();
    // A Kysely transaction whose work fails after the release…
    const failed = db.transaction().execute(async (trx) => {
      const current = await t.fence.xactRelease(trx, [lease!]);
      expect(current).toEqual([lease]);
      await trx.updateTable('jobs').set({ done: 1 }).where('id', '=', idOf(lease!)).execute();
      throw new Error('the work failed');
    });
    await expect(failed).rejects.toThrow('the work failed');
    // …and a pg client's explicit ROLLBACK: the same lease is still current, so it is returned again.
    const client = await t.pool.connect();
    try {
      await client.query('BEGIN');
      expect(await t.fence.xactRelease(client, [lease!])).toEqual([lease]);
      await client.query(`UPDATE ${s}.jobs SET done = 1 WHERE id = $1`, [idOf(lease!)]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await doneIds()).toEqual([]);
    expect(await leaseRows()).toEqual([{ key: lease!.key, token: lease!.token.toString() }]);
    // Held: nobody else gets the job while the lease lives…
    expect((await other.claim({ from: from(), limit: 5, ttlMs })).map(idOf)).toEqual([2, 3, 4, 5]);
    expect(await other.tryLease(lease!.key, { ttlMs })).toBeNull();
    // …and once it expires, the job comes back, under a new, larger token.
    await sleep(ttlMs + 200);
    const [again] = await other.claim({ from: from(), limit: 1, ttlMs: 60_000 });
    expect(again?.key).toBe(lease!.key);
    expect(again!.token > lease!.token).toBe(true);
  });

  it('keeps the deleted rows locked until commit: no takeover, even past the TTL', async () => {
    const ttlMs = 800;
    const [lease] = await t.fence.claim({ keys: ['job:1'], limit: 1, ttlMs });
    const other = t.another();
    const client = await t.pool.connect();
    try {
      await client.query('BEGIN');
      expect(await t.fence.xactRelease(client, [lease!])).toHaveLength(1);
      await sleep(ttlMs + 300); // expired by the clock now, but its DELETE is not committed
      expect(await other.claim({ keys: ['job:1'], limit: 1, ttlMs })).toEqual([]);
      expect(await other.tryLease('job:1', { ttlMs })).toBeNull();
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const next = await other.tryLease('job:1', { ttlMs });
    expect(next).not.toBeNull();
    expect(next!.token > lease!.token).toBe(true);
    await next!.release();
  });

  it('releases nothing whose lease expired or was taken over: the completion changes nothing', async () => {
    const [expired, takenOver, live] = await t.fence.claim({ from: from(), limit: 3, ttlMs: 500 });
    await sleep(700);
    const other = t.another();
    // The expired one stays expired; the second is taken over by another owner.
    const [theirs] = await other.claim({ keys: [takenOver!.key], limit: 1, ttlMs: 60_000 });
    expect(theirs).toBeDefined();
    // The third is renewed by hand, so it is current.
    await t.pool.query(
      `UPDATE ${s}.leases SET expires_at = clock_timestamp() + interval '1 minute' WHERE key = $1`,
      [live!.key],
    );
    const current = await db.transaction().execute(async (trx) => {
      const c = await t.fence.xactRelease(trx, [expired!, takenOver!, live!]);
      if (c.length > 0)
        await trx.updateTable('jobs').set({ done: 1 }).where('id', 'in', c.map(idOf)).execute();
      return c;
    });
    expect(current.map(idOf)).toEqual([idOf(live!)]);
    expect(await doneIds()).toEqual([idOf(live!)]);
    // The other owner's lease is untouched; the expired row stays for the reaper or a claimer.
    expect((await leaseRows()).map((r) => r.key)).toEqual([expired!.key, takenOver!.key]);
    expect((await leaseRows())[1]!.token).toBe(theirs!.token.toString());
  });

  it('never releases another owner’s lease, even with its key and token', async () => {
    const other = t.another();
    const [theirs] = await other.claim({ from: from(), limit: 1, ttlMs: 60_000 });
    const current = await db.transaction().execute((trx) => t.fence.xactRelease(trx, [theirs!]));
    expect(current).toEqual([]);
    expect(await leaseRows()).toHaveLength(1);
    expect(theirs!.signal.aborted).toBe(false);
    await theirs!.release();
  });

  it('refuses to run outside a transaction, and changes nothing', async () => {
    const leases = await t.fence.claim({ from: from(), limit: 2, ttlMs: 60_000 });
    const client = await t.pool.connect();
    try {
      await expect(t.fence.xactRelease(client, leases)).rejects.toBeInstanceOf(
        NotInTransactionError,
      );
    } finally {
      client.release();
    }
    await expect(t.fence.xactRelease(t.pool, leases)).rejects.toBeInstanceOf(NotInTransactionError);
    await expect(t.fence.xactRelease(db, leases)).rejects.toBeInstanceOf(NotInTransactionError);
    expect(await leaseRows()).toHaveLength(2);
    for (const lease of leases) expect(await lease.release()).toBe(true);
  });

  it('refuses bad input with a typed error', async () => {
    await db.transaction().execute(async (trx) => {
      await expect(t.fence.xactRelease(trx, 'job:1' as never)).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(t.fence.xactRelease(trx, [null as never])).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(
        t.fence.xactRelease(trx, [{ key: '', token: 1n } as never]),
      ).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(
        t.fence.xactRelease(trx, [{ key: 'job:1', token: 1 } as never]),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await t.fence.xactRelease(trx, [])).toEqual([]);
    });
    await expect(t.fence.xactRelease({} as never, [])).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
