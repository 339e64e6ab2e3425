import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DeadlockError,
  InvalidArgumentError,
  InvalidKeyError,
  LockTimeoutError,
  NotInTransactionError,
  type PgFence,
} from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { migratedFence, type TestFence } from '../support/database.js';

/** Advisory locks (session or transaction level) granted to one backend. */
async function locksOf(pool: pg.Pool, pid: number): Promise<bigint[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT ((classid::int8 << 32) | objid::int8)::text AS id FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = $1 ORDER BY 1`,
    [pid],
  );
  return rows.map((r) => BigInt.asIntN(64, BigInt(r.id)));
}

async function pidOf(client: pg.ClientBase): Promise<number> {
  return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

describe('xactLock', () => {
  let t: TestFence;
  let fence: PgFence;
  let other: PgFence;
  let db: Kysely<Record<string, never>>;

  beforeAll(async () => {
    t = await migratedFence();
    fence = t.fence;
    other = t.another();
    db = new Kysely({ dialect: new PostgresDialect({ pool: t.pool }) });
  });
  afterAll(async () => {
    await t.cleanup(); // ends t.pool, which the Kysely instance shares
  });

  it('with a pg client: held until COMMIT, gone after ROLLBACK', async () => {
    const client = await t.pool.connect();
    try {
      const pid = await pidOf(client);
      await client.query('BEGIN');
      await fence.xactLock(client, 'order:1');
      expect(await locksOf(t.pool, pid)).toEqual([advisoryKeyId(t.schema, 'order:1')]);
      expect(await other.tryLock('order:1')).toBeNull();
      await client.query('COMMIT');
      expect(await locksOf(t.pool, pid)).toEqual([]);
      const free = await other.tryLock('order:1');
      expect(free).not.toBeNull();
      await free!.release();

      await client.query('BEGIN');
      await fence.xactLock(client, 'order:1', { waitMs: 0 });
      await fence.xactLock(client, 77n);
      expect(await other.tryLock('order:1')).toBeNull();
      expect(await other.tryLock(77n)).toBeNull();
      await client.query('ROLLBACK');
      expect(await locksOf(t.pool, pid)).toEqual([]);
      const again = await other.tryLock('order:1');
      expect(again).not.toBeNull();
      await again!.release();
    } finally {
      client.release();
    }
  });

  it('with a Kysely transaction: held until commit, gone after rollback', async () => {
    let pid = 0;
    await db.transaction().execute(async (trx) => {
      pid = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx)).rows[0]!.pid;
      await fence.xactLock(trx, 'kysely:1', { waitMs: 5_000 });
      expect(await locksOf(t.pool, pid)).toEqual([advisoryKeyId(t.schema, 'kysely:1')]);
      expect(await other.tryLock('kysely:1')).toBeNull();
      // The transaction is still usable after the lock.
      const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(trx);
      expect(rows[0]!.one).toBe(1);
    });
    expect(await locksOf(t.pool, pid)).toEqual([]);
    const free = await other.tryLock('kysely:1');
    expect(free).not.toBeNull();
    await free!.release();

    const rollback = new Error('roll back');
    await expect(
      db.transaction().execute(async (trx) => {
        await fence.xactLock(trx, 'kysely:1');
        expect(await other.tryLock('kysely:1')).toBeNull();
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    const afterRollback = await other.tryLock('kysely:1');
    expect(afterRollback).not.toBeNull();
    await afterRollback!.release();
  });

  it('refuses a connection outside a transaction, and takes no lock', async () => {
    const client = await t.pool.connect();
    try {
      const pid = await pidOf(client);
      for (const trx of [client, t.pool, db]) {
        const error = await fence.xactLock(trx, 'outside').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NotInTransactionError);
        expect((error as NotInTransactionError).code).toBe('NOT_IN_TRANSACTION');
      }
      expect(await locksOf(t.pool, pid)).toEqual([]);
      const free = await other.tryLock('outside');
      expect(free).not.toBeNull();
      await free!.release();
    } finally {
      client.release();
    }
  });

  it('refuses unknown options before running anything, and takes no lock', async () => {
    const client = await t.pool.connect();
    try {
      const pid = await pidOf(client);
      await client.query('BEGIN');
      for (const options of [{ wait: 100 }, { waitMs: 100, mode: 'shared' }, 'soon']) {
        const error = await fence
          .xactLock(client, 'opts', options as never)
          .catch((e: unknown) => e);
        expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      }
      expect(await locksOf(t.pool, pid)).toEqual([]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });

  it('times out with LockTimeoutError, keeps the transaction usable and restores lock_timeout', async () => {
    const held = await other.lock('busy');
    const client = await t.pool.connect();
    try {
      const pid = await pidOf(client);
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = '7s'`);
      const start = performance.now();
      const error = await fence.xactLock(client, 'busy', { waitMs: 300 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect((error as LockTimeoutError).waitMs).toBe(300);
      expect(performance.now() - start).toBeGreaterThanOrEqual(250);
      const once = await fence.xactLock(client, 'busy', { waitMs: 0 }).catch((e: unknown) => e);
      expect(once).toBeInstanceOf(LockTimeoutError);
      // Still in a healthy transaction, with the caller's own setting.
      const { rows } = await client.query(`SELECT current_setting('lock_timeout') AS lt`);
      expect(rows[0].lt).toBe('7s');
      expect(await locksOf(t.pool, pid)).toEqual([]);

      await fence.xactLock(client, 'free-key', { waitMs: 1_000 });
      const after = await client.query(`SELECT current_setting('lock_timeout') AS lt`);
      expect(after.rows[0].lt).toBe('7s');
      await client.query('COMMIT');
    } finally {
      client.release();
      await held.release();
    }
  });

  it('turns a deadlock into DeadlockError and leaves the transaction usable', async () => {
    const a = await t.pool.connect();
    const b = await t.pool.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      await fence.xactLock(a, 'dl:1');
      await fence.xactLock(b, 'dl:2');
      const outcome = (trx: pg.PoolClient, key: string): Promise<unknown> =>
        fence.xactLock(trx, key, { waitMs: 30_000 }).then(
          () => 'locked',
          (e: unknown) => e,
        );
      const first = outcome(a, 'dl:2');
      await new Promise((r) => setTimeout(r, 100));
      const second = outcome(b, 'dl:1');
      // PostgreSQL picks one of the two as the victim; the other gets its lock once the
      // victim's transaction ends.
      const [victim, survivor, survivorResult, victimResult] = await Promise.race([
        first.then((r) => [a, b, second, r] as const),
        second.then((r) => [b, a, first, r] as const),
      ]);
      expect(victimResult).toBeInstanceOf(DeadlockError);
      expect((victimResult as DeadlockError).code).toBe('DEADLOCK');
      // The savepoint was rolled back, not the whole transaction.
      expect((await victim.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      await victim.query('ROLLBACK');
      expect(await survivorResult).toBe('locked');
      await survivor.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
  });

  it('leaves no lock behind when the timeout races a grant', async () => {
    const client = await t.pool.connect();
    try {
      const pid = await pidOf(client);
      let timedOut = 0;
      for (let i = 0; i < 30; i += 1) {
        const held = await other.lock('xrace');
        setTimeout(() => void held.release(), 20 + Math.random() * 10);
        await client.query('BEGIN');
        const result = await fence
          .xactLock(client, 'xrace', { waitMs: 20 + Math.random() * 10 })
          .then(
            () => 'locked',
            (e: unknown) => e,
          );
        const mine = await locksOf(t.pool, pid);
        if (result === 'locked') {
          expect(mine).toEqual([advisoryKeyId(t.schema, 'xrace')]);
        } else {
          expect(result).toBeInstanceOf(LockTimeoutError);
          expect(mine).toEqual([]);
          timedOut += 1;
        }
        await client.query('COMMIT');
        // The holder's release has run by now at the latest.
        await new Promise((r) => setTimeout(r, 35));
      }
      expect(timedOut).toBeGreaterThan(0);
      expect(await locksOf(t.pool, pid)).toEqual([]);
    } finally {
      client.release();
    }
  });

  it('refuses bad input before any SQL runs', async () => {
    let queries = 0;
    const spy = { query: async () => ((queries += 1), { rows: [] }) };
    await expect(fence.xactLock(spy, '')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(fence.xactLock(spy, 'k', { waitMs: -5 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    // The compiler refuses these; a JavaScript caller gets a typed error.
    // @ts-expect-error -- not a transaction
    await expect(fence.xactLock({}, 'k')).rejects.toBeInstanceOf(InvalidArgumentError);
    // @ts-expect-error -- not a transaction
    await expect(fence.xactLock(null, 'k')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(queries).toBe(0);
  });
});
