// The lock-delay (guarantee 1): no advisory lock is granted on a new server incarnation until
// its old holders must have noticed. A new incarnation is stood in for here by what one leaves
// behind in the schema: a row of an earlier incarnation in `incarnations`, and no first sight
// of the current one (crash recovery and promotion empty the unlogged incarnation_seen).
// test/faults/lock-delay-restart.test.ts restarts a real server.
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createPgFence,
  LockTimeoutError,
  NotMigratedError,
  type PgFence,
} from '../../src/index.js';
import { migratedFence, testUrl, uniqueSchema, type TestFence } from '../support/database.js';

const DELAY_MS = 1_500;

/** Makes the server look freshly restarted to the schema's next advisory session. */
async function asIfRestarted(t: TestFence): Promise<void> {
  await t.pool.query(`DELETE FROM "${t.schema}".incarnation_seen`);
  await t.pool.query(
    `INSERT INTO "${t.schema}".incarnations (system_id, timeline, started_at, first_seen)
     SELECT system_id, timeline, started_at - interval '1 day', now() - interval '1 day'
       FROM "${t.schema}".server_incarnation()
     ON CONFLICT DO NOTHING`,
  );
}

describe('the lock-delay of advisory locks', () => {
  let t: TestFence | undefined;
  const fences: PgFence[] = [];
  const fenceOn = (options: Parameters<TestFence['another']>[0] = {}): PgFence => {
    const f = t!.another({ lockDelayMs: DELAY_MS, ...options });
    fences.push(f);
    return f;
  };
  afterEach(async () => {
    await Promise.allSettled(fences.splice(0).map((f) => f.close()));
    await t?.cleanup();
    t = undefined;
  });

  it('does not delay a schema never used for advisory locks before', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    const lock = await t.fence.tryLock('fresh');
    expect(lock).not.toBeNull();
    await lock!.release();
    const { rows } = await t.pool.query<{ first_seen: Date | null }>(
      `SELECT first_seen FROM "${t.schema}".incarnation_seen`,
    );
    // Recorded as seen, with nothing before it to wait for; the incarnation is now on record.
    expect(rows).toEqual([{ first_seen: null }]);
    const { rows: logged } = await t.pool.query(`SELECT 1 FROM "${t.schema}".incarnations`);
    expect(logged).toHaveLength(1);
  });

  it('grants nothing on a new incarnation for lockDelayMs, then grants', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    await asIfRestarted(t);
    const fence = fenceOn();
    const started = performance.now();
    // tryLock never waits: during the delay every key counts as held.
    expect(await fence.tryLock('k')).toBeNull();
    // A wait shorter than the delay ends as contention, never as an outage.
    const short = await fence.lock('k', { waitMs: 200 }).catch((e: unknown) => e);
    expect(short).toBeInstanceOf(LockTimeoutError);
    expect(await fence.lockAll(['k', 'l'], { waitMs: 0 }).catch((e: unknown) => e)).toBeInstanceOf(
      LockTimeoutError,
    );
    const lock = await fence.lock('k', { waitMs: 10_000 });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(DELAY_MS);
    expect(waited).toBeLessThan(DELAY_MS + 2_000);
    await lock.release();
    // Once passed, the same incarnation grants at once, to new sessions too.
    const later = fenceOn();
    const again = await later.tryLock('k');
    expect(again).not.toBeNull();
    await again!.release();
    const all = await later.lockAll(['k', 'l'], { waitMs: 0 });
    await Promise.all(all.map((l) => l.release()));
  });

  it('waits out the delay for lockAll and withLock within their waits', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    await asIfRestarted(t);
    const fence = fenceOn();
    const started = performance.now();
    const locks = await fence.lockAll(['a', 'b'], { waitMs: 10_000 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(DELAY_MS);
    await Promise.all(locks.map((l) => l.release()));
    expect(await fence.withLock('a', () => 'ran', { waitMs: 0 })).toBe('ran');
  });

  it('counts from the first sight, whichever session or process saw it first', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    await asIfRestarted(t);
    const first = fenceOn();
    const started = performance.now();
    expect(await first.tryLock('x')).toBeNull();
    await new Promise((r) => setTimeout(r, DELAY_MS / 2));
    // Another process asking later waits only what is left.
    const second = fenceOn();
    const lock = await second.lock('y', { waitMs: 10_000 });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(DELAY_MS);
    expect(waited).toBeLessThan(DELAY_MS + 2_000);
    await lock.release();
  });

  it('is off with lockDelayMs 0, while a fence with a delay still waits', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    await asIfRestarted(t);
    const delayed = fenceOn();
    expect(await delayed.tryLock('k')).toBeNull();
    const lock = await fenceOn({ lockDelayMs: 0 }).tryLock('k');
    expect(lock).not.toBeNull();
    await lock!.release();
    expect(await delayed.tryLock('k')).toBeNull();
  });

  it('keeps advisory locks working in a read-only transaction mode, counting from the server start', async () => {
    t = await migratedFence({ lockDelayMs: DELAY_MS });
    await asIfRestarted(t);
    const url = new URL(testUrl());
    url.searchParams.set('options', '-c default_transaction_read_only=on');
    const fence = createPgFence({
      connectionString: url.toString(),
      schema: t.schema,
      lockDelayMs: DELAY_MS,
    });
    fences.push(fence);
    // The server started long before: nothing left to wait for, and nothing recorded.
    const lock = await fence.tryLock('k');
    expect(lock).not.toBeNull();
    await lock!.release();
    const { rows } = await t.pool.query(`SELECT 1 FROM "${t.schema}".incarnation_seen`);
    expect(rows).toHaveLength(0);
  });

  it('keeps advisory locks working on a schema without the function, and says so once', async () => {
    const errors: unknown[] = [];
    const fence = createPgFence({
      connectionString: testUrl(),
      schema: uniqueSchema('nolockdelay'),
      lockDelayMs: DELAY_MS,
      advisorySessions: 2,
      onError: (e) => errors.push(e),
    });
    fences.push(fence);
    const locks = await Promise.all(['p', 'q', 'r', 's'].map((k) => fence.lock(k, { waitMs: 0 })));
    await Promise.all(locks.map((l) => l.release()));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(NotMigratedError);
  });
});
