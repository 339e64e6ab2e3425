// The life of one held lock, the same for every kind (part of the contract in contract.ts):
// loss aborts the signal with LockLostError, a release after loss answers false, a second
// release throws, asyncDispose is idempotent, withX releases when its function throws, close()
// aborts what it held, and an unknown option is refused.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  AlreadyReleasedError,
  InvalidArgumentError,
  LockLostError,
  type PgFence,
} from '../../src/index.js';
import type { LockKind } from './contract.js';
import { testUrl, type TestFence } from './database.js';
import { within } from './wait.js';

/** One held lock of any kind, as the lifecycle tests use it. */
interface Held {
  release(): Promise<boolean>;
  readonly signal: AbortSignal;
  [Symbol.asyncDispose](): PromiseLike<void>;
}

/** Short enough that a renewal runs within a second and finds a lost row. */
const TTL_MS = 1_500;

interface LifecycleAdapter {
  /** Acquires and keeps the lock alive (leases renew themselves) until released or lost. */
  hold(fence: PgFence, key: string): Promise<Held>;
  /** Takes the lock away behind its holder's back, as a crash or an operator would. */
  lose(ctx: { schema: string; applicationName: string }, key: string, db: pg.Client): Promise<void>;
  /** The kind's `withX`, when it has one. */
  withHeld?: <T>(fence: PgFence, key: string, fn: () => Promise<T>) => Promise<T>;
  /** Calls the acquire function with arbitrary (possibly bad) options. */
  acquireRaw(fence: PgFence, key: string, options: unknown): Promise<unknown>;
}

/** The lease rows of a key deleted: its holder's next renewal finds its term gone. */
const deleteLeaseRows = async (
  ctx: { schema: string },
  key: string,
  db: pg.Client,
): Promise<void> => {
  const s = `"${ctx.schema}"`;
  const a = await db.query(`DELETE FROM ${s}.leases WHERE key = $1 AND token <> 0`, [key]);
  const b = await db.query(`DELETE FROM ${s}.lease_holders WHERE key = $1`, [key]);
  expect((a.rowCount ?? 0) + (b.rowCount ?? 0)).toBeGreaterThan(0);
};

/** The advisory sessions of one PgFence terminated, as a pooler's KILL or an operator would. */
const terminateSessions = async (
  ctx: { applicationName: string },
  _key: string,
  db: pg.Client,
): Promise<void> => {
  const { rows } = await db.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
     WHERE application_name = $1 AND pid <> pg_backend_pid()`,
    [ctx.applicationName],
  );
  expect(rows.length).toBeGreaterThan(0);
};

/** The locks of one `lockAll` as one handle. */
function allAsOne(locks: Held[]): Held {
  let disposed = false;
  return {
    release: async () => (await Promise.all(locks.map((l) => l.release()))).every(Boolean),
    signal: AbortSignal.any(locks.map((l) => l.signal)),
    [Symbol.asyncDispose]: async () => {
      if (disposed) return;
      disposed = true;
      await Promise.all(locks.map((l) => l[Symbol.asyncDispose]()));
    },
  };
}

const adapters: Record<LockKind, LifecycleAdapter> = {
  lease: {
    hold: (fence, key) => fence.lease(key, { ttlMs: TTL_MS, autoRenew: true }),
    lose: deleteLeaseRows,
    withHeld: (fence, key, fn) => fence.withLease(key, fn, { ttlMs: TTL_MS }),
    acquireRaw: (fence, key, options) => fence.lease(key, options as never),
  },
  semaphore: {
    hold: (fence, key) => fence.lease(key, { ttlMs: TTL_MS, autoRenew: true, permits: 2 }),
    lose: deleteLeaseRows,
    withHeld: (fence, key, fn) => fence.withLease(key, fn, { ttlMs: TTL_MS, permits: 2 }),
    acquireRaw: (fence, key, options) =>
      fence.lease(key, { permits: 2, ...(options as object) } as never),
  },
  'lease-set': {
    hold: async (fence, key) =>
      (await fence.leaseAll([key], { ttlMs: TTL_MS, autoRenew: true }))[0]!,
    lose: deleteLeaseRows,
    acquireRaw: (fence, key, options) => fence.leaseAll([key], options as never),
  },
  election: {
    hold: (fence, key) => fence.campaign(key, { ttlMs: TTL_MS }),
    lose: deleteLeaseRows,
    acquireRaw: (fence, key, options) => fence.campaign(key, options as never),
  },
  advisory: {
    hold: (fence, key) => fence.lock(key),
    lose: terminateSessions,
    withHeld: (fence, key, fn) => fence.withLock(key, fn),
    acquireRaw: (fence, key, options) => fence.lock(key, options as never),
  },
  'advisory-shared': {
    hold: (fence, key) => fence.lock(key, { mode: 'shared' }),
    lose: terminateSessions,
    withHeld: (fence, key, fn) => fence.withLock(key, fn, { mode: 'shared' }),
    acquireRaw: (fence, key, options) =>
      fence.lock(key, { mode: 'shared', ...(options as object) } as never),
  },
  'lease-shared': {
    hold: (fence, key) => fence.lease(key, { ttlMs: TTL_MS, autoRenew: true, mode: 'shared' }),
    lose: deleteLeaseRows,
    withHeld: (fence, key, fn) => fence.withLease(key, fn, { ttlMs: TTL_MS, mode: 'shared' }),
    acquireRaw: (fence, key, options) =>
      fence.lease(key, { mode: 'shared', ...(options as object) } as never),
  },
  'lock-all': {
    hold: async (fence, key) => allAsOne(await fence.lockAll([key, `${key}/2`])),
    lose: terminateSessions,
    acquireRaw: (fence, key, options) => fence.lockAll([key], options as never),
  },
};

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Defines the lifecycle part of the contract for one kind, on the enclosing file's fence. */
export function describeLifecycle(kind: LockKind, t: Omit<TestFence, 'cleanup'>): void {
  const adapter = adapters[kind];
  const own = (): { fence: PgFence; applicationName: string } => {
    const applicationName = unique('life').replace('-', '_');
    return { fence: t.another({ applicationName }), applicationName };
  };
  const withDb = async <T>(fn: (db: pg.Client) => Promise<T>): Promise<T> => {
    const db = new pg.Client({ connectionString: testUrl() });
    await db.connect();
    try {
      return await fn(db);
    } finally {
      await db.end();
    }
  };

  describe(`the ${kind} lifecycle`, () => {
    it('a loss aborts the signal with LockLostError, and a release after it answers false', async () => {
      const { fence, applicationName } = own();
      const key = unique('lost');
      const held = await adapter.hold(fence, key);
      expect(held.signal.aborted).toBe(false);
      await withDb((db) => adapter.lose({ schema: t.schema, applicationName }, key, db));
      const abort = new Promise((resolve) => {
        if (held.signal.aborted) resolve(null);
        held.signal.addEventListener('abort', resolve, { once: true });
      });
      expect(await within(abort, 5_000)).not.toBe('timeout');
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      expect(await held.release()).toBe(false);
      // The key is free for someone else.
      const next = await adapter.hold(t.fence, key);
      expect(next.signal.aborted).toBe(false);
      await next.release();
    });

    it('a second release throws AlreadyReleasedError; asyncDispose is idempotent', async () => {
      const key = unique('twice');
      const held = await adapter.hold(t.fence, key);
      expect(await held.release()).toBe(true);
      await expect(held.release()).rejects.toBeInstanceOf(AlreadyReleasedError);
      await held[Symbol.asyncDispose]();

      const disposed = await adapter.hold(t.fence, key);
      await disposed[Symbol.asyncDispose]();
      await disposed[Symbol.asyncDispose]();
      await expect(disposed.release()).rejects.toBeInstanceOf(AlreadyReleasedError);
      // Disposing released it: another PgFence takes the key at once.
      const other = t.another();
      const again = await adapter.hold(other, key);
      await again.release();
    });

    const withHeld = adapter.withHeld;
    // Only the kinds that have a withX form (withLease, withLock) get this test.
    if (withHeld) {
      it('withX releases when its function throws, and passes the error on', async () => {
        const key = unique('with');
        const boom = new Error('boom');
        const error = await withHeld(t.fence, key, async () => {
          throw boom;
        }).catch((e: unknown) => e);
        expect(error).toBe(boom);
        const other = t.another();
        const again = await adapter.hold(other, key);
        expect(again.signal.aborted).toBe(false);
        await again.release();
      });
    }

    it('close() aborts the signal of what it held, and the key is free afterwards', async () => {
      const { fence } = own();
      const key = unique('close');
      const held = await adapter.hold(fence, key);
      await fence.close();
      expect(held.signal.aborted).toBe(true);
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      const again = await adapter.hold(t.fence, key);
      await again.release();
    });

    it('refuses an unknown option with InvalidArgumentError', async () => {
      const error = await adapter
        .acquireRaw(t.fence, unique('opt'), { ttl: 5_000 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(String((error as Error).message)).toMatch(/ttl/);
    });
  });
}
