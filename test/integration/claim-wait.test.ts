import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClosedError, InvalidArgumentError, type Lease } from '../../src/index.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { settledWithin, sleep } from '../support/wait.js';

const CHANNEL = 'jobs_ready';

describe('claim({ waitMs }): waiting for work', () => {
  let t: TestFence;
  let s: string;
  // Polls far apart: a wake-up within a test's time must come from a notification or an expiry.
  const slowPoll = () => t.another({ pollIntervalMs: 60_000 });
  const from = () =>
    sql<{ key: string }>`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}
      WHERE done = 0 ORDER BY id`;
  const idOf = (lease: Lease) => Number(lease.key.slice('job:'.length));

  beforeAll(async () => {
    t = await migratedFence();
    s = `"${t.schema}"`;
    await t.pool.query(`CREATE TABLE ${s}.jobs (id int PRIMARY KEY, done int NOT NULL DEFAULT 0)`);
    // The trigger the README documents: one notification per inserting statement.
    await t.pool.query(`
      CREATE FUNCTION ${s}.jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_notify('${CHANNEL}', ''); RETURN NULL; END $$`);
    await t.pool.query(`
      CREATE TRIGGER jobs_ready AFTER INSERT ON ${s}.jobs
      FOR EACH STATEMENT EXECUTE FUNCTION ${s}.jobs_notify()`);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.pool.query(`DELETE FROM ${s}.leases`);
    await t.pool.query(`TRUNCATE ${s}.jobs`);
  });

  it('without waitMs returns at once; with it, returns empty only once waitMs has passed', async () => {
    const started = performance.now();
    expect(await t.fence.claim({ from: from(), limit: 5 })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2_000);
    const waitStarted = performance.now();
    expect(await t.fence.claim({ from: from(), limit: 5, waitMs: 400 })).toEqual([]);
    const waited = performance.now() - waitStarted;
    expect(waited).toBeGreaterThanOrEqual(390);
    expect(waited).toBeLessThan(3_000);
  });

  it('is woken by the wake channel: a task inserted while it waits is claimed in moments', async () => {
    const fence = slowPoll();
    // Make sure the LISTEN connection is up before the clock starts.
    await fence.claim({ from: from(), limit: 1, waitMs: 50, wakeChannel: CHANNEL });
    const claim = fence.claim({ from: from(), limit: 5, waitMs: 30_000, wakeChannel: CHANNEL });
    await sleep(300);
    const inserted = performance.now();
    await t.pool.query(`INSERT INTO ${s}.jobs (id) VALUES (7)`);
    const leases = await claim;
    const pickupMs = performance.now() - inserted;
    expect(leases.map(idOf)).toEqual([7]);
    // A few ms on an idle machine (bench/RESULTS.md measures it); generous here for CI's load.
    expect(pickupMs).toBeLessThan(2_000);
  });

  it('is woken by a release, and by an expiry, without polling', async () => {
    await t.pool.query(`INSERT INTO ${s}.jobs (id) VALUES (1), (2)`);
    const holder = t.another();
    const released = (await holder.claim({ from: from(), limit: 1, ttlMs: 60_000 }))[0]!;
    const expiring = (await holder.claim({ from: from(), limit: 1, ttlMs: 1_200 }))[0]!;
    const fence = slowPoll();
    const first = fence.claim({ from: from(), limit: 5, waitMs: 30_000 });
    await sleep(200);
    const handedBack = performance.now();
    await released.release();
    expect((await first).map(idOf)).toEqual([idOf(released)]);
    expect(performance.now() - handedBack).toBeLessThan(2_000);
    // The second lease is never released: the claimer wakes at its expiry (database clock).
    const second = await fence.claim({ from: from(), limit: 5, waitMs: 30_000 });
    expect(second.map(idOf)).toEqual([idOf(expiring)]);
    expect(second[0]!.token > expiring.token).toBe(true);
  });

  it('never returns empty while a matching task is free but busy for a moment', async () => {
    await t.pool.query(`INSERT INTO ${s}.jobs (id) VALUES (1)`);
    // Another transaction holds the job's row lock (as a claimer in flight would): SKIP LOCKED
    // skips it. Without a wait that is an empty claim; with one, claim tries again.
    const blocker = await t.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM ${s}.jobs WHERE id = 1 FOR UPDATE`);
      expect(await t.fence.claim({ from: from(), limit: 1 })).toEqual([]);
      const waiting = t.fence.claim({ from: from(), limit: 1, waitMs: 20_000 });
      await sleep(300);
      await blocker.query('ROLLBACK');
      const started = performance.now();
      expect((await waiting).map(idOf)).toEqual([1]);
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      blocker.release();
    }
  });

  it('many waiting claimers share new tasks: each task claimed once', async () => {
    const fences = Array.from({ length: 3 }, () => slowPoll());
    const claimed: Lease[] = [];
    const loops = fences.flatMap((fence) =>
      [0, 1].map(async () => {
        for (;;) {
          const leases = await fence.claim({
            from: from(),
            limit: 3,
            ttlMs: 60_000,
            waitMs: 1_500,
            wakeChannel: CHANNEL,
          });
          if (leases.length === 0) return;
          claimed.push(...leases);
        }
      }),
    );
    for (let i = 0; i < 10; i += 1) {
      await t.pool.query(
        `INSERT INTO ${s}.jobs (id) SELECT g FROM generate_series(${i * 10 + 1}, ${i * 10 + 10}) g`,
      );
      await sleep(30);
    }
    await Promise.all(loops);
    expect(claimed.map(idOf).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
  });

  it('ends the wait on the signal (its reason) and on close() (ClosedError)', async () => {
    const controller = new AbortController();
    const aborted = t.fence.claim({
      from: from(),
      limit: 1,
      waitMs: 30_000,
      signal: controller.signal,
    });
    await sleep(100);
    const reason = new Error('shutting down');
    controller.abort(reason);
    expect(
      await settledWithin(
        aborted.catch(() => {}),
        1_000,
      ),
    ).not.toBeNull();
    await expect(aborted).rejects.toBe(reason);
    await expect(
      t.fence.claim({ from: from(), limit: 1, waitMs: 1_000, signal: controller.signal }),
    ).rejects.toBe(reason);

    const closing = t.another();
    const waiting = closing.claim({ from: from(), limit: 1, waitMs: 30_000 }).then(
      () => 'claimed',
      (error: unknown) => error,
    );
    await sleep(100);
    await closing.close();
    expect(await waiting).toBeInstanceOf(ClosedError);
  });

  it('refuses bad wait options with a typed error before any SQL runs', async () => {
    const bad = [
      { waitMs: -1 },
      { waitMs: Number.NaN },
      { waitMs: '100' },
      { wakeChannel: CHANNEL }, // a wake channel without a wait
      { waitMs: 100, wakeChannel: '' },
      { waitMs: 100, wakeChannel: 'x'.repeat(64) },
      { waitMs: 100, wakeChannel: 7 },
      { waitMs: 100, signal: 'stop' },
      { waitMs: 100, wait: 100 }, // unknown option
    ];
    for (const extra of bad) {
      await expect(
        t.fence.claim({ from: from(), limit: 1, ...(extra as object) }),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
    }
  });
});
