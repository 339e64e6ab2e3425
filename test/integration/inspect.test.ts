import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('inspect', () => {
  const t = useMigratedFence();
  const s = `"${t.schema}"`;

  beforeEach(async () => {
    await t.pool.query(`TRUNCATE ${s}.leases`);
  });

  const acquire = async (keys: string[], owner: string, ttlMs: number) =>
    t.pool.query(
      `SELECT * FROM ${s}.acquire_leases($1::text[], $2, array_fill($3::float8, ARRAY[$4::int]), NULL)`,
      [keys, owner, ttlMs, keys.length],
    );

  it('lists live leases by the database clock, with owner, bigint token, times and metadata', async () => {
    const [lease] = await t.fence.claim({ keys: ['job:1'], limit: 1, ttlMs: 60_000 });
    await t.pool.query(
      `SELECT * FROM ${s}.acquire_leases(ARRAY['job:2'], 'other', ARRAY[60000::float8],
         ARRAY['{"host":"a","n":2}'::jsonb])`,
    );
    await acquire(['job:3'], 'short', 200);
    await sleep(400); // job:3 has expired (its row is still there: nobody reaped it)

    const { leases } = await t.fence.inspect();
    expect(leases.map((l) => l.key)).toEqual(['job:1', 'job:2']);
    const [mine, theirs] = leases;
    const holder = {
      owner: t.fence.owner,
      token: lease!.token,
      acquiredAt: expect.any(Date),
      expiresAt: lease!.expiresAt,
      heldMs: expect.any(Number),
      expiresInMs: expect.any(Number),
      metadata: null,
    };
    expect(mine).toEqual({
      key: 'job:1',
      mode: 'exclusive',
      permits: null,
      ...holder,
      holders: [holder],
      waiters: [],
    });
    expect(typeof theirs!.token).toBe('bigint');
    expect(theirs!.token).toBeGreaterThan(mine!.token);
    expect(theirs!.owner).toBe('other');
    expect(theirs!.metadata).toEqual({ host: 'a', n: 2 });
    expect(mine!.expiresAt.getTime() - mine!.acquiredAt.getTime()).toBe(60_000);
    // Age and time left, both by the database clock, add up to the term (whole ms, rounded).
    expect(mine!.heldMs).toBeGreaterThanOrEqual(0);
    expect(Math.abs(mine!.heldMs + mine!.expiresInMs - 60_000)).toBeLessThanOrEqual(1);
    await lease!.release();
  });

  it('filters by prefix, treating %, _ and \\ in it as plain characters', async () => {
    const keys = ['a%b', 'axb', 'a_b', 'ayb', 'a\\b', 'a\\xb', 'b', 'A%b'];
    await acquire(keys, 'someone', 60_000);
    const by = async (prefix: string) =>
      (await t.fence.inspect({ prefix })).leases.map((l) => l.key).sort();
    expect(await by('a%')).toEqual(['a%b']);
    expect(await by('a_')).toEqual(['a_b']);
    expect(await by('a\\')).toEqual(['a\\b', 'a\\xb']);
    expect(await by('a\\x')).toEqual(['a\\xb']);
    expect(await by('')).toEqual([...keys].sort());
    expect(await by('zzz')).toEqual([]);
  });

  it('lists advisory locks from pg_locks: id, pid, application name, granted or waiting', async () => {
    const holder = new pg.Client({
      connectionString: testUrl(),
      application_name: 'inspect-holder',
    });
    const waiter = new pg.Client({
      connectionString: testUrl(),
      application_name: 'inspect-waiter',
    });
    await holder.connect();
    await waiter.connect();
    try {
      // One id with the high bit set (a negative bigint), one small positive.
      const negative = -8_070_450_532_247_928_832n; // 0x9000…0
      const positive = 4_294_967_297n; // 2^32 + 1: both halves non-zero
      await holder.query('SELECT pg_advisory_lock($1::bigint), pg_advisory_lock($2::bigint)', [
        negative.toString(),
        positive.toString(),
      ]);
      const waiting = waiter.query('SELECT pg_advisory_lock_shared($1::bigint)', [
        positive.toString(),
      ]);
      const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      let found = false;
      for (let i = 0; i < 200 && !found; i += 1) {
        const { advisory } = await t.fence.inspect();
        found = advisory.some((a) => a.lockId === positive && !a.granted);
        if (!found) await sleep(25);
      }
      const { advisory } = await t.fence.inspect();
      const mine = advisory.filter((a) => a.lockId === negative || a.lockId === positive);
      expect(mine).toEqual(
        expect.arrayContaining([
          {
            key: null,
            lockId: negative,
            pid: holderPid,
            applicationName: 'inspect-holder',
            mode: 'exclusive',
            granted: true,
            waitingSince: null,
            waitingMs: null,
          },
          {
            key: null,
            lockId: positive,
            pid: holderPid,
            applicationName: 'inspect-holder',
            mode: 'exclusive',
            granted: true,
            waitingSince: null,
            waitingMs: null,
          },
          {
            key: null,
            lockId: positive,
            pid: expect.any(Number),
            applicationName: 'inspect-waiter',
            mode: 'shared',
            granted: false,
            waitingSince: expect.any(Date),
            waitingMs: expect.any(Number),
          },
        ]),
      );
      expect(mine.length).toBe(3);
      // The wait's age is the database's: it grows between two looks, from the same start.
      const waitOf = async () =>
        (await t.fence.inspect()).advisory.find((a) => a.lockId === positive && !a.granted)!;
      const first = await waitOf();
      await sleep(20);
      const second = await waitOf();
      expect(second.waitingSince).toEqual(first.waitingSince);
      expect(second.waitingMs!).toBeGreaterThan(first.waitingMs!);
      // A prefix can only match keys this process knows: hashes cannot be reversed.
      const filtered = await t.fence.inspect({ prefix: 'x' });
      expect(filtered.advisory.filter((a) => a.lockId === negative)).toEqual([]);
      await holder.query('SELECT pg_advisory_unlock_all()');
      await waiting;
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  it('lists the waiters of a key in queue order, with mode and age by the database clock', async () => {
    const key = `queue:${Date.now()}`;
    const holder = await t.fence.lease(key, { ttlMs: 60_000 });
    const [first, second] = [t.another(), t.another()];
    const stop = new AbortController();
    const waiting = async (n: number) => {
      for (let i = 0; i < 400; i += 1) {
        const [lease] = (await t.fence.inspect({ prefix: key })).leases;
        if (lease!.waiters.length === n) return lease!;
        await sleep(25);
      }
      throw new Error(`timed out waiting for ${n} waiters`);
    };
    const asked = [first.lease(key, { waitMs: 60_000, signal: stop.signal })];
    await waiting(1);
    asked.push(second.lease(key, { mode: 'shared', waitMs: 60_000, signal: stop.signal }));
    try {
      const before = await waiting(2);
      expect(before.waiters).toEqual([
        {
          owner: first.owner,
          mode: 'exclusive',
          permits: null,
          waitingSince: expect.any(Date),
          waitingMs: expect.any(Number),
        },
        {
          owner: second.owner,
          mode: 'shared',
          permits: null,
          waitingSince: expect.any(Date),
          waitingMs: expect.any(Number),
        },
      ]);
      const [a, b] = before.waiters;
      expect(a!.waitingSince.getTime()).toBeLessThanOrEqual(b!.waitingSince.getTime());
      expect(a!.waitingMs).toBeGreaterThanOrEqual(b!.waitingMs);
      await sleep(20);
      const after = await waiting(2);
      expect(after.waiters[0]!.waitingMs).toBeGreaterThan(a!.waitingMs);
    } finally {
      stop.abort();
      await Promise.allSettled(asked);
      await holder.release();
    }
  });

  it('names the key of an advisory lock this process holds', async () => {
    const lock = await t.fence.lock('report:nightly');
    try {
      const { advisory } = await t.fence.inspect({ prefix: 'report:' });
      const id = advisoryKeyId(t.schema, 'report:nightly');
      expect(advisory).toEqual([
        expect.objectContaining({ key: 'report:nightly', lockId: id, granted: true }),
      ]);
      expect((await t.fence.inspect({ prefix: 'other:' })).advisory).toEqual([]);
    } finally {
      await lock.release();
    }
    const after = await t.fence.inspect({ prefix: 'report:' });
    expect(after.advisory).toEqual([]);
  });

  it('refuses a bad prefix with a typed error', async () => {
    for (const prefix of [42, 'a\0b', 'x'.repeat(257), '\ud800']) {
      const error = await t.fence.inspect({ prefix } as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
    }
    const typo = await t.fence.inspect({ prefx: 'a' } as never).catch((e: unknown) => e);
    expect(typo).toBeInstanceOf(InvalidArgumentError);
  });
});
