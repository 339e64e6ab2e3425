import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createPgFence,
  InvalidArgumentError,
  NotMigratedError,
  type ReapPass,
} from '../../src/index.js';
import { reaperLockId } from '../../src/reaper/reaper-loop.js';
import { testUrl, uniqueSchema, useMigratedFence, type TestFence } from '../support/database.js';
import { sleep, within } from '../support/wait.js';

/**
 * Inserts, in `t`'s schema, `n` lease rows `<prefix><i>` expiring `offset` from now by the
 * database clock.
 */
const inserter =
  (t: Pick<TestFence, 'pool' | 'schema'>) => (prefix: string, n: number, offset: string) =>
    t.pool.query(
      `INSERT INTO "${t.schema}".leases (key, owner, token, acquired_at, expires_at)
       SELECT $1 || g, 'someone', "${t.schema}".next_token(), clock_timestamp(),
              clock_timestamp() + $3::interval
       FROM generate_series(1, $2::int) g`,
      [prefix, n, offset],
    );

describe('reap', () => {
  const t = useMigratedFence();
  const s = `"${t.schema}"`;
  const insert = inserter(t);

  beforeAll(async () => {
    // Every deleted lease row is recorded with the database time of its deletion, so a test
    // can check that nothing live was ever deleted.
    await t.pool.query(`
      CREATE TABLE ${s}.deleted (key text, token bigint, expires_at timestamptz, deleted_at timestamptz);
      CREATE FUNCTION ${s}.record_delete() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ${s}.deleted VALUES (OLD.key, OLD.token, OLD.expires_at, clock_timestamp());
        RETURN OLD;
      END $$;
      CREATE TRIGGER record_delete BEFORE DELETE ON ${s}.leases
        FOR EACH ROW EXECUTE FUNCTION ${s}.record_delete();`);
  });
  beforeEach(async () => {
    await t.pool.query(`TRUNCATE ${s}.leases, ${s}.deleted`);
  });

  const keys = async (table: 'leases' | 'deleted') =>
    (await t.pool.query<{ key: string }>(`SELECT key FROM ${s}.${table} ORDER BY key`)).rows.map(
      (r) => r.key,
    );
  const count = async (table: 'leases' | 'deleted') =>
    (await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.${table}`)).rows[0]!.n;
  /** Deleted rows that were still live by the database clock when they were deleted. */
  const deletedLive = async () =>
    (
      await t.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${s}.deleted WHERE expires_at > deleted_at`,
      )
    ).rows[0]!.n;

  it('deletes exactly the expired rows, in batches until a short batch, and returns how many', async () => {
    await insert('old', 25, '-1 hour');
    await insert('just', 5, '0 seconds');
    await insert('live', 10, '1 hour');
    expect(await t.fence.reap({ batchSize: 10 })).toBe(30);
    const left = await keys('leases');
    expect(left.length).toBe(10);
    expect(left.every((k) => k.startsWith('live'))).toBe(true);
    const deleted = await keys('deleted');
    expect(deleted.length).toBe(30);
    expect(deleted.every((k) => k.startsWith('old') || k.startsWith('just'))).toBe(true);
    expect(await deletedLive()).toBe(0);
    expect(await t.fence.reap()).toBe(0);
    expect(await count('leases')).toBe(10);
  });

  it("deletes a semaphore's dead holders, its group row and lapsed waiter places, and no live holder", async () => {
    const dead = await Promise.all(
      [1, 2].map(() => t.fence.tryLease('reap-sem-dead', { permits: 3, ttlMs: 200 })),
    );
    const live = await Promise.all(
      [1, 2].map(() => t.fence.tryLease('reap-sem-live', { permits: 3, ttlMs: 60_000 })),
    );
    expect([...dead, ...live].every((lease) => lease !== null)).toBe(true);
    await t.pool.query(
      `INSERT INTO ${s}.lease_waiters (key, owner, mode, permits, enqueued_at, expires_at)
       VALUES ('reap-sem-live', 'gone', 'exclusive', 3, clock_timestamp() - interval '1 minute',
               clock_timestamp() - interval '1 second')`,
    );
    await sleep(400); // the dead semaphore's two holders and its group row expire
    const rows = async (table: string, key: string) =>
      (
        await t.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${s}.${table} WHERE key = $1`,
          [key],
        )
      ).rows[0]!.n;
    expect(await rows('lease_holders', 'reap-sem-dead')).toBe(2);
    // The group row and the two holder rows of the dead semaphore, nothing of the live one.
    expect(await t.fence.reap()).toBe(3);
    expect(await rows('leases', 'reap-sem-dead')).toBe(0);
    expect(await rows('lease_holders', 'reap-sem-dead')).toBe(0);
    expect(await rows('lease_waiters', 'reap-sem-live')).toBe(0);
    expect(await rows('leases', 'reap-sem-live')).toBe(1);
    expect(await rows('lease_holders', 'reap-sem-live')).toBe(2);
    expect(await deletedLive()).toBe(0);
    // The live semaphore's count is intact: one permit left, then none.
    const third = await t.fence.tryLease('reap-sem-live', { permits: 3, ttlMs: 60_000 });
    expect(third).not.toBeNull();
    expect(await t.fence.tryLease('reap-sem-live', { permits: 3, ttlMs: 60_000 })).toBeNull();
    await Promise.all([...live, third].map((lease) => lease!.release()));
    // The dead semaphore's key is free again, for any kind.
    const plain = await t.fence.tryLease('reap-sem-dead', { ttlMs: 60_000 });
    expect(plain).not.toBeNull();
    await plain!.release();
  });

  it('skips a lease whose renewal is in flight instead of deleting or waiting for it', async () => {
    const { rows } = await t.pool.query<{ token: string }>(
      `SELECT token::text FROM ${s}.acquire_leases(ARRAY['k'], 'holder', ARRAY[1500::float8], NULL)`,
    );
    const token = rows[0]!.token;
    const renewer = await t.pool.connect();
    try {
      await renewer.query('BEGIN');
      const renewed = await renewer.query(
        `SELECT * FROM ${s}.renew_leases(ARRAY['k'], ARRAY[$1::bigint], ARRAY[60000::float8])`,
        [token],
      );
      expect(renewed.rowCount).toBe(1);
      await sleep(1_800); // past the old expiry; the renewal has not committed yet
      expect(await within(t.fence.reap(), 10_000)).toBe(0);
      await renewer.query('COMMIT');
    } finally {
      await renewer.query('ROLLBACK').catch(() => {});
      renewer.release();
    }
    expect(await t.fence.reap()).toBe(0);
    expect(await t.fence.isCurrent('k', BigInt(token))).toBe(true);
    expect(await count('deleted')).toBe(0);
  });

  it('never deletes a live lease while leases are renewed and re-acquired around it', async () => {
    // Expired rows appear all the time; an acquirer re-takes recent ones (live for 2 s) while
    // reapers delete; a renewer keeps 40 other leases alive.
    await t.pool.query(
      `SELECT * FROM ${s}.acquire_leases(
         ARRAY(SELECT 'r' || g FROM generate_series(1, 40) g), 'renewer',
         array_fill(800::float8, ARRAY[40]), NULL)`,
    );
    const renewed = new Map(
      (
        await t.pool.query<{ key: string; token: string }>(
          `SELECT key, token::text FROM ${s}.leases`,
        )
      ).rows.map((r) => [r.key, r.token]),
    );
    const lost = new Set<string>();
    const stopAt = performance.now() + 3_000;
    const running = () => performance.now() < stopAt;
    let produced = 0;
    const producer = async () => {
      for (let round = 0; running(); round += 1) {
        await insert(`c${round}-`, 50, '-1 millisecond');
        produced += 50;
        await t.pool.query(
          `SELECT * FROM ${s}.acquire_leases(
             ARRAY(SELECT 'c' || $1::int || '-' || g FROM generate_series(1, 50, 3) g), 'acquirer',
             array_fill(2000::float8, ARRAY[17]), NULL)`,
          [round],
        );
        await sleep(5);
      }
    };
    const renewer = async () => {
      while (running()) {
        const { rows } = await t.pool.query<{ key: string }>(
          `SELECT key FROM ${s}.renew_leases($1::text[], $2::bigint[], array_fill(800::float8, ARRAY[$3::int]))`,
          [[...renewed.keys()], [...renewed.values()], renewed.size],
        );
        const back = new Set(rows.map((r) => r.key));
        for (const key of renewed.keys()) if (!back.has(key)) lost.add(key);
        await sleep(50);
      }
    };
    let reaped = 0;
    const reaper = async (fence = t.fence) => {
      while (running()) {
        const n = await fence.reap({ batchSize: 20 }); // not `reaped += await …`: two run at once
        reaped += n;
        await sleep(1);
      }
    };
    const other = t.another();
    await Promise.all([producer(), renewer(), reaper(), reaper(other)]);
    // Looked at before the last pass: a lease renewed just before the renewer stopped runs out
    // 800 ms later, and that pass may then legitimately take it.
    const remaining = new Set(await keys('leases'));
    reaped += await t.fence.reap();

    expect(produced).toBeGreaterThan(0);
    expect(reaped).toBeGreaterThan(0);
    expect(await count('deleted')).toBe(reaped);
    // The invariant: no deleted row was live by the database clock when it was deleted.
    expect(await deletedLive()).toBe(0);
    // Every lease the renewer kept alive is still there (one it failed to renew in time may
    // legitimately have expired and gone).
    for (const key of renewed.keys()) {
      if (!lost.has(key)) expect(remaining.has(key), key).toBe(true);
    }
    expect(lost.size).toBeLessThan(renewed.size);
  });

  it('does the work once when two reapers run at once', async () => {
    await insert('x', 20_000, '-1 second');
    await insert('live', 100, '1 hour');
    const other = t.another();
    const [a, b] = await Promise.all([
      t.fence.reap({ batchSize: 250 }),
      other.reap({ batchSize: 250 }),
    ]);
    expect(a + b).toBe(20_000);
    expect(await count('deleted')).toBe(20_000);
    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT count(DISTINCT key)::int AS n FROM ${s}.deleted`,
    );
    expect(rows[0]!.n).toBe(20_000);
    expect(await count('leases')).toBe(100);
  });

  it('refuses bad options with a typed error', async () => {
    for (const options of [
      { batchSize: 0 },
      { batchSize: 1.5 },
      { batchSize: -3 },
      { batchSize: 10_001 },
      { batchSize: '10' },
      { batchsize: 10 },
      null,
    ]) {
      const error = await t.fence.reap(options as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
    }
  });
});

describe('the reaper loop', () => {
  const t = useMigratedFence();
  const s = `"${t.schema}"`;
  const insert = inserter(t);

  beforeEach(async () => {
    await t.pool.query(`TRUNCATE ${s}.leases`);
  });

  const remaining = async () =>
    (await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s}.leases`)).rows[0]!.n;
  const waitFor = async (what: string, test: () => Promise<boolean> | boolean) => {
    const started = performance.now();
    while (!(await test())) {
      if (performance.now() - started > 30_000) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  };
  const reaperLockHeld = async () =>
    (
      await t.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
         WHERE locktype = 'advisory' AND objsubid = 1
           AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
        [reaperLockId(t.schema).toString()],
      )
    ).rows[0]!.n > 0;

  it('reaps every interval and reports each pass', async () => {
    await insert('old', 100, '-1 second');
    await insert('live', 5, '1 hour');
    const passes: ReapPass[] = [];
    const started = performance.now();
    const reaper = t.fence.startReaper({
      intervalMs: 50,
      batchSize: 30,
      onPass: (p) => passes.push(p),
    });
    const deletingPasses = () => passes.filter((p) => p.deleted > 0);
    try {
      await waitFor('the first rows', () => passes.reduce((n, p) => n + p.deleted, 0) === 100);
      expect(await remaining()).toBe(5);
      // Batches repeat until a short one: one pass took the whole backlog (30 + 30 + 30 + 10).
      expect(deletingPasses().map((p) => p.deleted)).toEqual([100]);
      // Each pass reports its own time: more than nothing for four statements, and no more
      // than the test has waited.
      const waited = performance.now() - started;
      expect(deletingPasses()[0]!.durationMs).toBeGreaterThan(0);
      for (const pass of passes) expect(pass.durationMs).toBeLessThanOrEqual(waited);
      // Later passes pick up rows that expire later.
      await insert('later', 7, '-1 second');
      await waitFor('the later rows', () => passes.reduce((n, p) => n + p.deleted, 0) === 107);
      expect(deletingPasses().map((p) => p.deleted)).toEqual([100, 7]);
      expect(await remaining()).toBe(5);
    } finally {
      await reaper.stop();
    }
  });

  it('does not reap while another process holds the reaper lock', async () => {
    await insert('old', 50, '-1 second');
    const other = await t.pool.connect();
    await other.query('SELECT pg_advisory_lock($1::bigint)', [reaperLockId(t.schema).toString()]);
    const passes: ReapPass[] = [];
    const reaper = t.fence.startReaper({ intervalMs: 30, onPass: (p) => passes.push(p) });
    try {
      await sleep(600); // many intervals
      expect(await remaining()).toBe(50);
      expect(passes).toEqual([]); // skipped passes are not reported
      const before = passes.length;
      await other.query('SELECT pg_advisory_unlock($1::bigint)', [
        reaperLockId(t.schema).toString(),
      ]);
      await waitFor('a pass once the lock is free', () => passes.length > before);
      await waitFor('the rows', async () => (await remaining()) === 0);
    } finally {
      other.release();
      await reaper.stop();
    }
  });

  it('runs one pass at a time across processes, and the passes add up', async () => {
    await insert('x', 30_000, '-1 second');
    const passes: { who: string; start: number; end: number; deleted: number }[] = [];
    const track = (who: string) => (pass: ReapPass) => {
      const end = performance.now();
      passes.push({ who, start: end - pass.durationMs, end, deleted: pass.deleted });
    };
    const other = t.another();
    const reapers = [
      t.fence.startReaper({ intervalMs: 20, batchSize: 100, onPass: track('a') }),
      other.startReaper({ intervalMs: 20, batchSize: 100, onPass: track('b') }),
    ];
    try {
      await waitFor('every row', async () => (await remaining()) === 0);
    } finally {
      await Promise.all(reapers.map((r) => r.stop()));
    }
    expect(passes.reduce((n, p) => n + p.deleted, 0)).toBe(30_000);
    const working = passes.filter((p) => p.deleted > 0);
    for (const p of working) {
      for (const q of working) {
        if (p.who !== q.who) {
          // Overlap would mean both held the lock at once (1 ms allowed for timer granularity).
          expect(p.end <= q.start + 1 || q.end <= p.start + 1, JSON.stringify([p, q])).toBe(true);
        }
      }
    }
  });

  it('stop() waits for the pass in flight, which stops between batches and lets go of the lock', async () => {
    await insert('x', 40_000, '-1 second');
    let reported = 0;
    const reaper = t.fence.startReaper({
      intervalMs: 10,
      batchSize: 50,
      onPass: (p) => (reported += p.deleted),
    });
    await waitFor('the pass to start', async () => (await remaining()) < 40_000);
    await reaper.stop();
    expect(await reaperLockHeld()).toBe(false);
    const left = await remaining();
    expect(left).toBeGreaterThan(0); // it stopped mid-backlog…
    expect(reported).toBe(40_000 - left); // …and reported what it did
    await sleep(300);
    expect(await remaining()).toBe(left); // nothing runs after stop()
    await reaper.stop(); // idempotent
  });

  it('recovers when its connection dies mid-pass: the lock goes with it, the next pass finishes', async () => {
    await insert('x', 40_000, '-1 second');
    const errors: unknown[] = [];
    const reaper = t.fence.startReaper({
      intervalMs: 20,
      batchSize: 50,
      onError: (e) => errors.push(e),
    });
    try {
      let pid: number | undefined;
      await waitFor('the reaper to hold its lock', async () => {
        const { rows } = await t.pool.query<{ pid: number }>(
          `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted
             AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
          [reaperLockId(t.schema).toString()],
        );
        pid = rows[0]?.pid;
        return pid !== undefined;
      });
      await t.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor('the failure to be reported', () => errors.length > 0);
      await waitFor('every row, by later passes', async () => (await remaining()) === 0);
    } finally {
      await reaper.stop();
    }
    expect(await reaperLockHeld()).toBe(false);
  });

  it('reports failing passes to onError and carries on', async () => {
    const fence = createPgFence({ connectionString: testUrl(), schema: uniqueSchema('never') });
    const errors: unknown[] = [];
    const reaper = fence.startReaper({ intervalMs: 20, onError: (e) => errors.push(e) });
    try {
      await waitFor('two failed passes', () => errors.length >= 2);
      expect(errors[0]).toBeInstanceOf(NotMigratedError);
    } finally {
      await reaper.stop();
      await fence.close();
    }
  });

  it('refuses bad options synchronously with a typed error', () => {
    for (const options of [
      { intervalMs: 0 },
      { intervalMs: NaN },
      { intervalMs: Infinity },
      { intervalMs: '100' },
      { batchSize: 0 },
      { onPass: 'x' },
      { onError: 42 },
      { interval: 100 },
    ]) {
      expect(() => t.fence.startReaper(options as never)).toThrow(InvalidArgumentError);
    }
  });
});
