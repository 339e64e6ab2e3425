import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, type PgFence } from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

/** Far longer than any wait below: a waiter that wakes in time was woken by NOTIFY. */
const HUGE_POLL_MS = 120_000;

describe('waiting for a lease', () => {
  const t = useMigratedFence();
  let holder: PgFence;
  let waiter: PgFence;
  let n = 0;
  const key = (name: string) => `${name}-${(n += 1)}`;

  beforeAll(() => {
    holder = t.another();
    waiter = t.another({ pollIntervalMs: HUGE_POLL_MS, applicationName: `waiter_${t.schema}` });
  });

  it('is woken by the release notification, not by a poll', async () => {
    const k = key('notify');
    const held = await holder.lease(k, { ttlMs: 100_000 });
    const started = performance.now();
    const waiting = waiter.lease(k, { waitMs: 60_000 });
    await sleep(300);
    await held.release();
    const lease = await waiting;
    const took = performance.now() - started;
    // Neither the holder's expiry (100 s) nor the poll interval (120 s) could have woken it.
    expect(took).toBeLessThan(10_000);
    expect(lease.token > held.token).toBe(true);
    await lease.release();
  });

  it('still wakes after its listening connection was killed', async () => {
    const k = key('relisten');
    const held = await holder.lease(k, { ttlMs: 100_000 });
    const waiting = waiter.lease(k, { waitMs: 60_000 });
    await sleep(300);
    const admin = new pg.Client({ connectionString: testUrl() });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1`,
        [`waiter_${t.schema}:listen`],
      );
      expect(rows.length).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    await sleep(500);
    await held.release();
    const lease = await waiting;
    expect(lease.key).toBe(k);
    await lease.release();
  });

  it('retries when the holder’s lease expires, timed by the database’s expiry', async () => {
    const k = key('expiry');
    const held = await holder.lease(k, { ttlMs: 800 });
    const started = performance.now();
    const lease = await waiter.lease(k, { waitMs: 60_000 });
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(10_000);
    expect(lease.token > held.token).toBe(true);
    expect(await held.release()).toBe(false);
    await lease.release();
  });

  it('serves one process’s waiters in arrival order', async () => {
    const k = key('fifo');
    const held = await holder.lease(k);
    const order: number[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 6; i += 1) {
      waits.push(
        waiter.lease(k, { waitMs: 30_000 }).then(async (lease) => {
          order.push(i);
          await sleep(10);
          await lease.release();
        }),
      );
      await sleep(30);
    }
    await held.release();
    await Promise.all(waits);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('times out a caller queued behind a holder of its own process, and the queue goes on', async () => {
    const k = key('local');
    const held = await waiter.lease(k);
    const error = await waiter.lease(k, { waitMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    const next = waiter.lease(k, { waitMs: 30_000 });
    await sleep(50);
    await held.release();
    const lease = await next;
    await lease.release();
  });

  it('times out with waitMs 0 after a single attempt', async () => {
    const k = key('zero');
    const held = await holder.lease(k);
    await expect(waiter.lease(k, { waitMs: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
    await held.release();
    const lease = await waiter.lease(k, { waitMs: 0 });
    await lease.release();
  });

  it('hands a released key to a waiting process quickly (200 handoffs)', async () => {
    const k = key('handoff');
    const latencies: number[] = [];
    let current = await holder.lease(k);
    const sides = [holder, waiter];
    for (let i = 0; i < 200; i += 1) {
      const next = sides[(i + 1) % 2]!;
      const waiting = next.lease(k, { waitMs: 30_000 });
      await sleep(15);
      const started = performance.now();
      await current.release();
      current = await waiting;
      latencies.push(performance.now() - started);
    }
    await current.release();
    latencies.sort((a, b) => a - b);
    const p50 = latencies[99]!;
    const p99 = latencies[197]!;
    console.log(
      `[lease handoff] n=200 p50=${p50.toFixed(2)} ms p99=${p99.toFixed(2)} ms max=${latencies[199]!.toFixed(2)} ms`,
    );
    // Only a generous bound: without NOTIFY each handoff would wait out the 120 s poll.
    expect(p50).toBeLessThan(5_000);
  });
});
