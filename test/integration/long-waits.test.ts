import { beforeAll, describe, expect, it } from 'vitest';
import type { PgFence } from '../../src/index.js';
import { useMigratedFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

// The options accept waits and TTLs of up to a year, but setTimeout cuts any delay above
// 2^31 − 1 ms (~24.8 days) to 1 ms. These cases use such values and check that nothing fires
// early: no premature LockTimeoutError, no timer spinning every millisecond.

/** A wait or TTL just past what one setTimeout can express. */
const BEYOND_TIMER_MS = 2 ** 31 + 60_000;
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

/** Resolves to 'pending' if `promise` has not settled after `ms`. */
async function stateAfter(promise: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    promise.then(
      () => 'resolved',
      (error: unknown) => `rejected: ${error instanceof Error ? error.name : String(error)}`,
    ),
    sleep(ms).then(() => 'pending'),
  ]);
}

/** Counts the TimeoutOverflowWarnings emitted while `fn` runs plus `ms` afterwards. */
async function overflowWarnings(fn: () => Promise<void>, ms: number): Promise<number> {
  let count = 0;
  const onWarning = (warning: Error): void => {
    if (warning.name === 'TimeoutOverflowWarning') count += 1;
  };
  process.on('warning', onWarning);
  try {
    await fn();
    await sleep(ms);
  } finally {
    process.off('warning', onWarning);
  }
  return count;
}

describe('waits and TTLs longer than one timer can express', () => {
  const t = useMigratedFence();
  let holder: PgFence;
  let waiter: PgFence;
  let n = 0;
  const key = (name: string) => `${name}-${(n += 1)}`;

  beforeAll(() => {
    holder = t.another();
    waiter = t.another({ pollIntervalMs: 200 });
  });

  it('a lease waiter with a 24.9-day wait keeps waiting, then gets the lease', async () => {
    const k = key('lease-wait');
    const held = await holder.lease(k, { ttlMs: 60_000 });
    const waiting = waiter.lease(k, { waitMs: BEYOND_TIMER_MS });
    expect(await stateAfter(waiting, 1_500)).toBe('pending');
    await held.release();
    const lease = await waiting;
    expect(lease.token > held.token).toBe(true);
    await lease.release();
  });

  it('an advisory waiter with a 24.9-day wait keeps waiting, then gets the lock', async () => {
    const k = key('lock-wait');
    const held = await holder.lock(k);
    const waiting = waiter.lock(k, { waitMs: BEYOND_TIMER_MS });
    expect(await stateAfter(waiting, 1_500)).toBe('pending');
    await held.release();
    const lock = await waiting;
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
  });

  it('an advisory lock on a free key with a 24.9-day wait is granted', async () => {
    // A fresh PgFence: its first lock also opens the session, which takes longer than 1 ms.
    const fresh = t.another();
    const lock = await fresh.lock(key('lock-free'), { waitMs: BEYOND_TIMER_MS });
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
  });

  it('a same-process advisory waiter with a 24.9-day wait keeps waiting in line', async () => {
    const k = key('lock-queue');
    const held = await waiter.lock(k);
    const waiting = waiter.lock(k, { waitMs: BEYOND_TIMER_MS });
    expect(await stateAfter(waiting, 1_000)).toBe('pending');
    await held.release();
    const lock = await waiting;
    await lock.release();
  });

  it('xactLock accepts a 24.9-day wait', async () => {
    const client = await t.pool.connect();
    try {
      await client.query('BEGIN');
      await waiter.xactLock(client, key('xact'), { waitMs: BEYOND_TIMER_MS });
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted`,
      );
      expect(rows[0]!.n).toBe(1);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('a 30-day auto-renewed lease does not spin its timers', async () => {
    let lease: Awaited<ReturnType<PgFence['lease']>> | undefined;
    const warnings = await overflowWarnings(async () => {
      lease = await waiter.lease(key('long-ttl'), { ttlMs: THIRTY_DAYS_MS, autoRenew: true });
    }, 500);
    expect(lease!.signal.aborted).toBe(false);
    expect(warnings).toBe(0);
    expect(await lease!.release()).toBe(true);
  });
});
