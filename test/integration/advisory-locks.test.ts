import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlreadyReleasedError,
  ClosedError,
  InvalidArgumentError,
  InvalidKeyError,
  LockTimeoutError,
  LockLostError,
  type AdvisoryLock,
  type PgFence,
} from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { SessionLockManager } from '../../src/advisory/session-lock-manager.js';
import { Database } from '../../src/db/database.js';
import { resolveOptions } from '../../src/options.js';
import { migratedFence, testUrl, uniqueSchema, type TestFence } from '../support/database.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The advisory locks held on the server by connections with this application_name. */
async function serverLocks(pool: pg.Pool, appName: string): Promise<bigint[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT ((l.classid::int8 << 32) | l.objid::int8)::text AS id
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.application_name = $1
      ORDER BY 1`,
    [appName],
  );
  return rows.map((r) => BigInt.asIntN(64, BigInt(r.id)));
}

async function connectionsOf(pool: pg.Pool, appName: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
    [appName],
  );
  return rows[0]!.n;
}

describe('session advisory locks', () => {
  let t: TestFence;
  let appName: string;
  let fence: PgFence;
  let other: PgFence;

  beforeAll(async () => {
    appName = uniqueSchema('adv');
    t = await migratedFence({ applicationName: appName });
    fence = t.fence;
    other = t.another({ applicationName: `${appName}_o` });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('holds the key on the server until release; a second release throws', async () => {
    const lock = await fence.lock('invoice:42');
    expect(lock.key).toBe('invoice:42');
    expect(lock.signal.aborted).toBe(false);
    expect(await serverLocks(t.pool, appName)).toEqual([advisoryKeyId(t.schema, 'invoice:42')]);
    expect(await other.tryLock('invoice:42')).toBeNull();

    expect(await lock.release()).toBe(true);
    expect(await serverLocks(t.pool, appName)).toEqual([]);
    const again = await lock.release().catch((e: unknown) => e);
    expect(again).toBeInstanceOf(AlreadyReleasedError);
    expect((again as AlreadyReleasedError).code).toBe('ALREADY_RELEASED');
    await lock[Symbol.asyncDispose](); // idempotent: no throw after release
    expect(lock.signal.aborted).toBe(false); // a release is not a loss

    const taken = await other.tryLock('invoice:42');
    expect(taken).not.toBeNull();
    await taken!.release();
  });

  it('releases through `await using` and withLock, also when the routine throws', async () => {
    {
      await using lock = await fence.lock('disposed');
      expect(await other.tryLock('disposed')).toBeNull();
      expect(lock.key).toBe('disposed');
    }
    const afterUsing = await other.tryLock('disposed');
    expect(afterUsing).not.toBeNull();
    await afterUsing!.release();

    const result = await fence.withLock('with', async (lock) => {
      expect(await other.tryLock('with')).toBeNull();
      return `ran with ${String(lock.key)}`;
    });
    expect(result).toBe('ran with with');
    const boom = new Error('boom');
    await expect(
      fence.withLock('with', async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    // A routine that released the lock itself is fine too.
    await fence.withLock('with', (lock) => lock.release());
    expect(await serverLocks(t.pool, appName)).toEqual([]);
  });

  it('tryLock returns null when the key is held in this process or elsewhere', async () => {
    const mine = await fence.lock('busy');
    expect(await fence.tryLock('busy')).toBeNull(); // re-entrant on the server, refused here
    expect(await other.tryLock('busy')).toBeNull();
    await mine.release();
    const theirs = await other.lock('busy');
    expect(await fence.tryLock('busy')).toBeNull();
    await theirs.release();
    const free = await fence.tryLock('busy');
    expect(free).not.toBeNull();
    await free!.release();
  });

  it('waits for a key held elsewhere and gets it once it is released', async () => {
    const theirs = await other.lock('handoff');
    let got = false;
    const waiting = fence.lock('handoff', { waitMs: 20_000 }).then((lock) => {
      got = true;
      return lock;
    });
    await sleep(300);
    expect(got).toBe(false);
    await theirs.release();
    const mine = await waiting;
    expect(await other.tryLock('handoff')).toBeNull();
    await mine.release();
  });

  it('times out with LockTimeoutError, waiting in this process or on the server', async () => {
    // Connected first: a wait that ends before the database answered at all is an
    // UnavailableError, and this case is about a held key.
    await (await fence.lock('timeout')).release();
    const theirs = await other.lock('timeout');
    const start = performance.now();
    // Long enough for the database to answer a try even on a loaded machine: a wait in which
    // it never answered would be an UnavailableError.
    const error = await fence.lock('timeout', { waitMs: 1_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).code).toBe('LOCK_TIMEOUT');
    expect((error as LockTimeoutError).waitMs).toBe(1_000);
    expect(performance.now() - start).toBeGreaterThanOrEqual(990);
    const once = await fence.lock('timeout', { waitMs: 0 }).catch((e: unknown) => e);
    expect(once).toBeInstanceOf(LockTimeoutError);
    await theirs.release();

    const mine = await fence.lock('timeout');
    const queued = await fence.lock('timeout', { waitMs: 200 }).catch((e: unknown) => e);
    expect(queued).toBeInstanceOf(LockTimeoutError);
    await mine.release();
    // Neither timed-out caller left anything behind.
    expect(await serverLocks(t.pool, appName)).toEqual([]);
  });

  it('rejects with the signal’s reason when the wait is aborted', async () => {
    const theirs = await other.lock('abort');
    const reason = new Error('shutting down');
    const controller = new AbortController();
    const waiting = fence.lock('abort', { signal: controller.signal, waitMs: 20_000 });
    const mine = await fence.lock('abort-local');
    const local = new AbortController();
    const waitingLocal = fence.lock('abort-local', { signal: local.signal, waitMs: 20_000 });
    await sleep(150);
    // Both outcomes are heard from the start: a server wait rejects only once its statement
    // ended, the in-process one at once.
    const waited = waiting.then(
      () => 'granted',
      (e: unknown) => e,
    );
    const waitedLocal = waitingLocal.then(
      () => 'granted',
      (e: unknown) => e,
    );
    controller.abort(reason);
    local.abort('local reason');
    expect(await waited).toBe(reason);
    expect(await waitedLocal).toBe('local reason');
    const pre = AbortSignal.abort(new Error('already'));
    await expect(fence.lock('abort', { signal: pre })).rejects.toThrow('already');
    await theirs.release();
    await mine.release();
    const after = await fence.tryLock('abort');
    expect(after).not.toBeNull();
    await after!.release();
    expect(await serverLocks(t.pool, appName)).toEqual([]);
  });

  it('lets other keys come and go on the shared session while a caller waits', async () => {
    const single = t.another({ applicationName: `${appName}_s`, advisorySessions: 1 });
    const theirs = await other.lock('stuck');
    let waiterDone = false;
    const waiter = single.lock('stuck', { waitMs: 30_000 }).then((lock) => {
      waiterDone = true;
      return lock;
    });
    await sleep(100);
    // 200 acquire/release cycles of other keys on the same (only) session, while it waits.
    const cycles = (async () => {
      for (let i = 0; i < 200; i += 1) {
        const lock = await single.lock(`free:${i % 7}`, { waitMs: 5_000 });
        expect(await lock.release()).toBe(true);
      }
      return 'done';
    })();
    const outcome = await Promise.race([cycles, sleep(15_000).then(() => 'stalled')]);
    expect(outcome).toBe('done');
    expect(waiterDone).toBe(false);
    await theirs.release();
    const mine = await waiter;
    expect(await mine.release()).toBe(true);
  });

  it('gives one key to one of 16 callers of this process at a time', async () => {
    let inside = 0;
    let maxInside = 0;
    let runs = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 5; i += 1) {
          await fence.withLock(
            'contended',
            async () => {
              inside += 1;
              maxInside = Math.max(maxInside, inside);
              await sleep(Math.random() * 3);
              inside -= 1;
              runs += 1;
            },
            { waitMs: 30_000 },
          );
        }
      }),
    );
    expect(runs).toBe(80);
    expect(maxInside).toBe(1);
  });

  it('uses a bigint key as the advisory lock id itself, for interop', async () => {
    const client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
    try {
      const lock = await fence.lock(4242n);
      expect(lock.key).toBe(4242n);
      const { rows } = await client.query(`SELECT pg_try_advisory_lock(4242) AS ok`);
      expect(rows[0].ok).toBe(false);
      await lock.release();
      const held = await client.query(`SELECT pg_try_advisory_lock(-7) AS ok`);
      expect(held.rows[0].ok).toBe(true);
      expect(await fence.tryLock(-7n)).toBeNull();
      await client.query(`SELECT pg_advisory_unlock(-7)`);
      const free = await fence.tryLock(-7n);
      expect(free).not.toBeNull();
      await free!.release();
    } finally {
      await client.end();
    }
  });

  it('treats two keys with the same lock id as one: a collision means waiting, not a double grant', async () => {
    const id = advisoryKeyId(t.schema, 'collides');
    const byName = await fence.lock('collides');
    expect(await fence.tryLock(id)).toBeNull();
    expect(await other.tryLock(id)).toBeNull();
    await byName.release();
    const byId = await fence.lock(id);
    expect(await fence.tryLock('collides')).toBeNull();
    await byId.release();
  });

  it('refuses bad input with typed errors before any SQL runs', async () => {
    const name = uniqueSchema('idle');
    const fresh = t.another({ applicationName: name });
    const attempts: [() => Promise<unknown>, new (...args: never[]) => Error][] = [
      [() => fresh.lock(''), InvalidKeyError],
      [() => fresh.lock('x'.repeat(257)), InvalidKeyError],
      [() => fresh.lock(42 as unknown as string), InvalidKeyError],
      [() => fresh.lock(null as unknown as string), InvalidKeyError],
      [() => fresh.lock('a\0b'), InvalidKeyError],
      [() => fresh.lock(2n ** 63n), InvalidKeyError],
      [() => fresh.tryLock(''), InvalidKeyError],
      [() => fresh.lock('k', { waitMs: -1 }), InvalidArgumentError],
      [() => fresh.lock('k', { waitMs: Number.NaN }), InvalidArgumentError],
      [() => fresh.lock('k', { signal: {} as AbortSignal }), InvalidArgumentError],
      [() => fresh.withLock('k', 'not a function' as never), InvalidArgumentError],
      [() => fresh.withLock('', async () => {}), InvalidKeyError],
    ];
    for (const [attempt, type] of attempts) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(type);
    }
    // No session was ever opened for these calls.
    expect(await connectionsOf(t.pool, name)).toBe(0);
    const lock = await fresh.lock('k');
    expect(await connectionsOf(t.pool, name)).toBe(1);
    await lock.release();
  });

  it('reports the keys it holds by lock id', async () => {
    const options = resolveOptions({ connectionString: testUrl(), schema: t.schema });
    const db = new Database(options);
    const manager = new SessionLockManager(db, options);
    try {
      const a = await manager.lock('held:a');
      const b = await manager.lock(99n);
      expect(manager.heldKeys()).toEqual(
        new Map<bigint, string | bigint>([
          [advisoryKeyId(t.schema, 'held:a'), 'held:a'],
          [99n, 99n],
        ]),
      );
      await a.release();
      expect([...manager.heldKeys().values()]).toEqual([99n]);
      await b.release();
      expect(manager.heldKeys().size).toBe(0);
    } finally {
      await manager.close();
      await db.close();
    }
  });

  it('holds 1,000 locks at once on a handful of connections', async () => {
    const keys = Array.from({ length: 1_000 }, (_, i) => `many:${i}`);
    const locks = await Promise.all(keys.map((k) => fence.lock(k)));
    expect(await serverLocks(t.pool, appName)).toHaveLength(1_000);
    const connections = await connectionsOf(t.pool, appName);
    expect(connections).toBeGreaterThanOrEqual(1);
    expect(connections).toBeLessThanOrEqual(2); // advisorySessions, default 2
    expect(await other.tryLock('many:500')).toBeNull();
    expect((await Promise.all(locks.map((l) => l.release()))).every(Boolean)).toBe(true);
    expect(await serverLocks(t.pool, appName)).toEqual([]);
  });

  it('leaves no lock on the server when timeouts and aborts race grants', async () => {
    // Another instance takes and drops the keys all the time, so many of our tries are on the
    // wire at the moment our caller gives up.
    const keys = ['race:0', 'race:1', 'race:2', 'race:3'];
    let stop = false;
    const churn = (async () => {
      while (!stop) {
        await Promise.all(
          keys.map(async (k) => {
            const l = await other.tryLock(k);
            await sleep(Math.random() * 2);
            await l?.release();
          }),
        );
      }
    })();
    let granted = 0;
    let gaveUp = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        for (let i = 0; i < 40; i += 1) {
          const key = keys[(c + i) % keys.length]!;
          const controller = new AbortController();
          if (i % 2 === 0)
            setTimeout(() => controller.abort(new Error('gave up')), Math.random() * 4);
          let lock: AdvisoryLock | undefined;
          try {
            lock = await fence.lock(key, {
              waitMs: 1 + Math.random() * 4,
              signal: controller.signal,
            });
            granted += 1;
          } catch (error) {
            if (!(error instanceof LockTimeoutError) && (error as Error).message !== 'gave up') {
              throw error;
            }
            gaveUp += 1;
          }
          await lock?.release();
        }
      }),
    );
    stop = true;
    await churn;
    expect(granted + gaveUp).toBe(320);
    expect(gaveUp).toBeGreaterThan(0);
    // The cleanup of a late grant runs after the caller was told; give it a moment.
    for (let i = 0; i < 50 && (await serverLocks(t.pool, appName)).length > 0; i += 1) {
      await sleep(100);
    }
    expect(await serverLocks(t.pool, appName)).toEqual([]);
    // And every key is free for someone else.
    for (const k of keys) {
      const l = await other.tryLock(k);
      expect(l).not.toBeNull();
      await l!.release();
    }
  });

  it('aborts held locks and fails waiters with ClosedError when the fence closes', async () => {
    const closing = t.another({ applicationName: `${appName}_c` });
    const lock = await closing.lock('closing');
    const waiting = closing.lock('closing', { waitMs: 20_000 }).catch((e: unknown) => e);
    await sleep(100);
    await closing.close();
    expect(await waiting).toBeInstanceOf(ClosedError);
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(await lock.release()).toBe(false);
    const taken = await other.tryLock('closing');
    expect(taken).not.toBeNull();
    await taken!.release();
  });
});
