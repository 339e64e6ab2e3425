import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createPgFence,
  InvalidArgumentError,
  InvalidKeyError,
  NotMigratedError,
  DatabaseError,
  type ClaimOptions,
  type Lease,
} from '../../src/index.js';
import { migratedFence, testUrl, uniqueSchema, type TestFence } from '../support/database.js';
import { sleep, within } from '../support/wait.js';

interface Db {
  jobs: { id: number; done: number };
}

const keysOf = (leases: Lease[]) => leases.map((l) => l.key);

describe('claim', () => {
  let t: TestFence;
  let db: Kysely<Db>;
  let jobs: string;

  beforeAll(async () => {
    t = await migratedFence();
    jobs = `"${t.schema}".jobs`;
    db = new Kysely<Db>({ dialect: new PostgresDialect({ pool: t.pool }) }).withSchema(t.schema);
    await t.pool.query(`CREATE TABLE ${jobs} (id int PRIMARY KEY, done int NOT NULL DEFAULT 0)`);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  beforeEach(async () => {
    await t.pool.query(`DELETE FROM "${t.schema}".leases`);
    await t.pool.query(`TRUNCATE ${jobs}`);
    await t.pool.query(`INSERT INTO ${jobs} (id) SELECT g FROM generate_series(1, 10) g`);
  });

  const pending = () =>
    db
      .selectFrom('jobs')
      .select(sql<string>`'job:' || id`.as('key'))
      .where('done', '=', 0)
      .orderBy('id');

  const leaseRows = async () =>
    (
      await t.pool.query<{ key: string; owner: string; token: string }>(
        `SELECT key, owner, token::text AS token FROM "${t.schema}".leases ORDER BY token`,
      )
    ).rows;

  it('takes up to limit rows of a Kysely query, then the next ones, each with a new larger token', async () => {
    const first = await t.fence.claim({ from: pending(), limit: 4, ttlMs: 60_000 });
    expect(keysOf(first)).toEqual(['job:1', 'job:2', 'job:3', 'job:4']);
    const second = await t.fence.claim({ from: pending(), limit: 4, ttlMs: 60_000 });
    expect(keysOf(second)).toEqual(['job:5', 'job:6', 'job:7', 'job:8']);
    const third = await t.fence.claim({ from: pending(), limit: 4, ttlMs: 60_000 });
    expect(keysOf(third)).toEqual(['job:9', 'job:10']);
    expect(await t.fence.claim({ from: pending(), limit: 4, ttlMs: 60_000 })).toEqual([]);

    const all = [...first, ...second, ...third];
    const tokens = all.map((l) => l.token);
    for (const token of tokens) expect(typeof token).toBe('bigint');
    expect(new Set(tokens).size).toBe(10);
    // Each batch's tokens are larger than every earlier batch's.
    expect(Math.max(...first.map((l) => Number(l.token)))).toBeLessThan(
      Math.min(...second.map((l) => Number(l.token))),
    );
    for (const lease of all) {
      expect(lease.owner).toBe(t.fence.owner);
      expect(lease.signal.aborted).toBe(false);
      expect(lease.expiresAt.getTime()).toBeGreaterThan(Date.now() + 30_000);
    }
    // The database agrees: ten live leases, ours, with exactly these tokens.
    const rows = await leaseRows();
    expect(rows.map((r) => r.owner)).toEqual(Array(10).fill(t.fence.owner));
    expect(rows.map((r) => BigInt(r.token)).sort()).toEqual([...tokens].sort());
    for (const lease of all) await lease.release();
  });

  it('accepts a Kysely sql fragment and an already compiled query, parameters and all', async () => {
    const minId = 3;
    const fragment = sql<{
      key: string;
    }>`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}
      WHERE id > ${minId} AND done = ${0} ORDER BY id DESC`;
    const viaFragment = await t.fence.claim({ from: fragment, limit: 2, ttlMs: 60_000 });
    expect(keysOf(viaFragment)).toEqual(['job:10', 'job:9']);

    const compiled = pending().where('id', '<', 6).compile();
    expect(compiled.parameters).toEqual([0, 6]);
    const viaCompiled = await t.fence.claim({ from: compiled, limit: 10, ttlMs: 60_000 });
    expect(keysOf(viaCompiled)).toEqual(['job:1', 'job:2', 'job:3', 'job:4', 'job:5']);

    // Hand-written SQL with its own $1, for callers without Kysely; a trailing ";" is fine.
    const byHand = await t.fence.claim({
      from: {
        sql: `SELECT 'job:' || id AS key FROM ${jobs} WHERE id = ANY($1::int[]);`,
        parameters: [[6, 7, 1]],
      },
      limit: 10,
      ttlMs: 60_000,
    });
    expect(keysOf(byHand).sort()).toEqual(['job:6', 'job:7']);
    for (const lease of [...viaFragment, ...viaCompiled, ...byHand]) await lease.release();
  });

  it('hands a released or expired key out again with a larger token', async () => {
    const [a] = await t.fence.claim({
      from: pending().where('id', '=', 1),
      limit: 1,
      ttlMs: 60_000,
    });
    expect(a?.key).toBe('job:1');
    expect(await a!.release()).toBe(true);
    const [b] = await t.fence.claim({
      from: pending().where('id', '=', 1),
      limit: 1,
      ttlMs: 1_500,
    });
    expect(b?.key).toBe('job:1');
    expect(b!.token).toBeGreaterThan(a!.token);
    // Not before it expires…
    expect(await t.fence.claim({ from: pending().where('id', '=', 1), limit: 1 })).toEqual([]);
    await sleep(1_800);
    // …and after.
    const [c] = await t.fence.claim({
      from: pending().where('id', '=', 1),
      limit: 1,
      ttlMs: 60_000,
    });
    expect(c?.key).toBe('job:1');
    expect(c!.token).toBeGreaterThan(b!.token);
    await c!.release();
  });

  it('skips rows another transaction has locked instead of waiting for them', async () => {
    // A slow claimer: rows 1-5 locked in a transaction that stays open.
    const slow = await t.pool.connect();
    try {
      await slow.query('BEGIN');
      await slow.query(`SELECT id FROM ${jobs} WHERE id <= 5 FOR UPDATE`);
      const fast = await within(
        t.fence.claim({ from: pending(), limit: 3, ttlMs: 60_000 }),
        10_000,
      );
      expect(fast).not.toBe('timeout');
      expect(keysOf(fast as Lease[])).toEqual(['job:6', 'job:7', 'job:8']);

      // Every candidate locked: an empty answer, at once.
      const none = await within(
        t.fence.claim({ from: pending().where('id', '<=', 5), limit: 3, ttlMs: 60_000 }),
        10_000,
      );
      expect(none).toEqual([]);
      // The slow claimer was never disturbed: its transaction is still open and holds its rows.
      const { rows } = await slow.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${jobs} WHERE id <= 5`,
      );
      expect(rows[0]!.n).toBe(5);
      await slow.query('COMMIT');
      for (const lease of fast as Lease[]) await lease.release();
    } finally {
      slow.release();
    }
  });

  it('does not hand out a job that another claimer finished between its snapshot and its lock', async () => {
    // Built deterministically with two connections:
    // - `finisher` marks job 1 done in an open transaction (holding its row);
    // - `gate` holds advisory lock 7001, which the claim's own query waits for *after* its
    //   statement snapshot was taken (an InitPlan, evaluated at the first row), so the claim
    //   sees job 1 as not done;
    // - the finisher commits, then the gate opens: the claim reaches job 1 only now.
    const finisher = await t.pool.connect();
    const gate = await t.pool.connect();
    try {
      await gate.query('SELECT pg_advisory_lock(7001)');
      await finisher.query('BEGIN');
      await finisher.query(`UPDATE ${jobs} SET done = 1 WHERE id = 1`);

      const claimed = t.fence.claim({
        from: sql`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}
          WHERE done = 0 AND id <= 2 AND (SELECT true FROM pg_advisory_xact_lock_shared(7001))
          ORDER BY id`,
        limit: 2,
        ttlMs: 60_000,
      });
      // Wait until the claim is parked on the gate: its snapshot is taken.
      for (let i = 0; ; i += 1) {
        const { rows } = await gate.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks
           WHERE locktype = 'advisory' AND objid = 7001 AND NOT granted`,
        );
        if (rows[0]!.n === 1) break;
        if (i > 400) throw new Error('the claim never reached the gate');
        await sleep(25);
      }
      await finisher.query('COMMIT');
      await gate.query('SELECT pg_advisory_unlock(7001)');

      const leases = await claimed;
      // Job 1 matched the snapshot but not its latest committed version: skipped, not claimed.
      expect(keysOf(leases)).toEqual(['job:2']);
      expect((await leaseRows()).map((r) => r.key)).toEqual(['job:2']);
      for (const lease of leases) await lease.release();
    } finally {
      await finisher.query('ROLLBACK').catch(() => {});
      finisher.release();
      gate.release();
    }
  });

  it('takes up to limit free keys out of a list, in order, skipping live leases', async () => {
    // "b" is held by someone else.
    await t.pool.query(
      `SELECT * FROM "${t.schema}".acquire_leases(ARRAY['b'], 'someone', ARRAY[60000::float8], NULL)`,
    );
    const keys = ['a', 'b', 'c', 'd', 'a'];
    const first = await t.fence.claim({ keys, limit: 2, ttlMs: 60_000 });
    expect(keysOf(first)).toEqual(['a', 'c']);
    const second = await t.fence.claim({ keys, limit: 2, ttlMs: 60_000 });
    expect(keysOf(second)).toEqual(['d']);
    expect(await t.fence.claim({ keys, limit: 2, ttlMs: 60_000 })).toEqual([]);
    expect(await t.fence.claim({ keys: [], limit: 2 })).toEqual([]);
    const owners = Object.fromEntries(
      (await leaseRows()).map((r) => [r.key, r.owner === t.fence.owner ? 'us' : r.owner]),
    );
    expect(owners).toEqual({ a: 'us', b: 'someone', c: 'us', d: 'us' });
    for (const lease of [...first, ...second]) await lease.release();
  });

  it('skips a key whose acquirer is still in flight, without waiting for it', async () => {
    // An acquirer that has serialised on "k1" and written its row but not committed.
    const acquirer = await t.pool.connect();
    try {
      await acquirer.query('BEGIN');
      await acquirer.query(
        `SELECT * FROM "${t.schema}".acquire_leases(ARRAY['k1'], 'other', ARRAY[60000::float8], NULL)`,
      );
      const leases = await within(
        t.fence.claim({ keys: ['k1', 'k2'], limit: 2, ttlMs: 60_000 }),
        10_000,
      );
      expect(leases).not.toBe('timeout');
      expect(keysOf(leases as Lease[])).toEqual(['k2']);
      await acquirer.query('COMMIT');
      // Committed now: a live lease of someone else, still not ours.
      expect(await t.fence.claim({ keys: ['k1'], limit: 1 })).toEqual([]);
      for (const lease of leases as Lease[]) await lease.release();
    } finally {
      await acquirer.query('ROLLBACK').catch(() => {});
      acquirer.release();
    }
  });

  it('skips an expired key while its old holder’s guarded write is in flight, and takes it after', async () => {
    const [old] = await t.fence.claim({ keys: ['g'], limit: 1, ttlMs: 1_500 });
    const writer = await t.pool.connect();
    try {
      await writer.query('BEGIN');
      const guarded = await writer.query(
        `UPDATE ${jobs} SET done = done + 1 WHERE id = 1 AND "${t.schema}".is_current('g', $1)`,
        [old!.token.toString()],
      );
      expect(guarded.rowCount).toBe(1);
      await sleep(1_800); // the lease has expired by the database clock; the write is still open
      const during = await within(t.fence.claim({ keys: ['g'], limit: 1, ttlMs: 60_000 }), 10_000);
      expect(during).toEqual([]);
      await writer.query('COMMIT');
      const [next] = await t.fence.claim({ keys: ['g'], limit: 1, ttlMs: 60_000 });
      expect(next?.token).toBeGreaterThan(old!.token);
      await next!.release();
    } finally {
      await writer.query('ROLLBACK').catch(() => {});
      writer.release();
    }
  });

  it('renews claimed leases in the background when asked', async () => {
    const [lease] = await t.fence.claim({
      keys: ['renewed'],
      limit: 1,
      ttlMs: 1_200,
      autoRenew: true,
    });
    await sleep(2_500); // twice the TTL: only renewals keep it

    expect(lease!.signal.aborted).toBe(false);
    expect(await t.fence.isCurrent('renewed', lease!.token)).toBe(true);
    expect(await lease!.release()).toBe(true);
  });

  it('refuses a query that yields a bad key with InvalidKeyError, leaving nothing locked or leased', async () => {
    // One connection for the claims and the checks: the server reports an error before it has
    // finished rolling the statement back, so a check on another connection could still see
    // the failed statement's row locks for a moment.
    const single = new pg.Pool({ connectionString: testUrl(), max: 1 });
    const fence = createPgFence({ pool: single, schema: t.schema });
    try {
      for (const bad of [sql`NULL::text`, sql`''`, sql`repeat('x', 257)`]) {
        const error = await fence
          .claim({
            from: sql`SELECT CASE WHEN id = 3 THEN ${bad} ELSE 'job:' || id END AS key
              FROM ${sql.table(`${t.schema}.jobs`)} WHERE id <= 3 ORDER BY id`,
            limit: 5,
          })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidKeyError);
        expect((error as Error).message).toMatch(/1 to 256 characters/);
      }
      expect(await leaseRows()).toEqual([]);
      // Rolled back with the statement: the rows locked along the way are free again.
      const { rows } = await single.query(`SELECT id FROM ${jobs} FOR UPDATE NOWAIT`);
      expect(rows.length).toBe(10);
    } finally {
      await fence.close();
      await single.end();
    }
  });

  it('passes the caller’s own SQL errors through, and says "migrate" only for its own objects', async () => {
    const missingTable = await t.fence
      .claim({ from: sql`SELECT 'x' AS key FROM no_such_table`, limit: 1 })
      .catch((e: unknown) => e);
    expect(missingTable).not.toBeInstanceOf(NotMigratedError);
    expect(missingTable).toBeInstanceOf(DatabaseError);
    expect((missingTable as DatabaseError).sqlState).toBe('42P01');
    expect((missingTable as DatabaseError).cause).toMatchObject({ code: '42P01' });
    // Even when the caller's table name starts with the pgfence schema's name.
    const lookalike = await t.fence
      .claim({ from: { sql: `SELECT 'x' AS key FROM ${t.schema}_jobs`, parameters: [] }, limit: 1 })
      .catch((e: unknown) => e);
    expect(lookalike).not.toBeInstanceOf(NotMigratedError);
    expect((lookalike as DatabaseError).sqlState).toBe('42P01');
    const noKey = await t.fence
      .claim({ from: sql`SELECT id FROM ${sql.table(`${t.schema}.jobs`)}`, limit: 1 })
      .catch((e: unknown) => e);
    expect((noKey as DatabaseError).sqlState).toBe('42703');

    const unmigrated = createPgFence({
      connectionString: testUrl(),
      schema: uniqueSchema('never'),
    });
    try {
      for (const options of [
        { keys: ['a'], limit: 1 },
        { from: sql`SELECT 'a' AS key`, limit: 1 },
      ]) {
        const error = await unmigrated.claim(options).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NotMigratedError);
      }
    } finally {
      await unmigrated.close();
    }
  });

  it('refuses bad input with a typed error before any SQL runs', async () => {
    const pool = t.pool as unknown as { query: unknown; connect: unknown };
    const [query, connect] = [pool.query, pool.connect];
    let calls = 0;
    pool.query = (...args: unknown[]) => {
      calls += 1;
      return (query as (...a: unknown[]) => unknown).apply(t.pool, args);
    };
    pool.connect = (...args: unknown[]) => {
      calls += 1;
      return (connect as (...a: unknown[]) => unknown).apply(t.pool, args);
    };
    const from = pending();
    const cases: [unknown, typeof InvalidArgumentError | typeof InvalidKeyError, RegExp][] = [
      [undefined, InvalidArgumentError, /options object/],
      [null, InvalidArgumentError, /options object/],
      [{ limit: 1 }, InvalidArgumentError, /exactly one of/],
      [{ from, keys: ['a'], limit: 1 }, InvalidArgumentError, /exactly one of/],
      [{ keys: ['a'] }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: 0 }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: 1.5 }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: '3' }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: 10_001 }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: Infinity }, InvalidArgumentError, /"limit"/],
      [{ keys: ['a'], limit: 1, ttlMs: 0 }, InvalidArgumentError, /"ttlMs"/],
      [{ keys: ['a'], limit: 1, ttlMs: -5 }, InvalidArgumentError, /"ttlMs"/],
      [{ keys: ['a'], limit: 1, ttlMs: NaN }, InvalidArgumentError, /"ttlMs"/],
      [{ keys: ['a'], limit: 1, ttlMs: Infinity }, InvalidArgumentError, /"ttlMs"/],
      [{ keys: ['a'], limit: 1, autoRenew: 'yes' }, InvalidArgumentError, /"autoRenew"/],
      [{ keys: ['a'], limit: 1, lmit: 2 }, InvalidArgumentError, /unknown claim option "lmit"/],
      [{ keys: 'a', limit: 1 }, InvalidArgumentError, /"keys" must be an array/],
      [{ keys: [''], limit: 1 }, InvalidKeyError, /empty/],
      [{ keys: ['a', 42], limit: 1 }, InvalidKeyError, /string/],
      [{ keys: ['x'.repeat(257)], limit: 1 }, InvalidKeyError, /256/],
      [{ keys: Array(100_001).fill('k'), limit: 1 }, InvalidArgumentError, /at most 100000/],
      [{ from: 42, limit: 1 }, InvalidArgumentError, /"from"/],
      [{ from: {}, limit: 1 }, InvalidArgumentError, /"from"/],
      [
        { from: { sql: 'SELECT 1 AS key', parameters: 'x' }, limit: 1 },
        InvalidArgumentError,
        /"from"/,
      ],
      [
        { from: { sql: `DELETE FROM ${jobs} RETURNING 'x' AS key`, parameters: [] }, limit: 1 },
        InvalidArgumentError,
        /SELECT/,
      ],
      [{ from: db.deleteFrom('jobs'), limit: 1 }, InvalidArgumentError, /SELECT/],
    ];
    try {
      for (const [options, type, message] of cases) {
        const error = await t.fence.claim(options as ClaimOptions).catch((e: unknown) => e);
        expect(error, JSON.stringify(options)?.slice(0, 80)).toBeInstanceOf(type);
        expect((error as Error).message).toMatch(message);
      }
      expect(calls).toBe(0);
    } finally {
      pool.query = query;
      pool.connect = connect;
    }
    expect(await leaseRows()).toEqual([]);
  });
});

describe('claim on a pool the caller shares', () => {
  it('runs as one statement: the candidate rows are locked FOR UPDATE SKIP LOCKED', async () => {
    const t = await migratedFence();
    try {
      await t.pool.query(`CREATE TABLE "${t.schema}".jobs (id int PRIMARY KEY)`);
      await t.pool.query(`INSERT INTO "${t.schema}".jobs SELECT generate_series(1, 3)`);
      // Every statement pgfence sends on the caller's pool, whichever way it checks clients out.
      const seen: string[] = [];
      let recording = true;
      const wrapped = new WeakSet<object>();
      const record = (client: { query: (...a: unknown[]) => unknown }): void => {
        if (wrapped.has(client)) return;
        wrapped.add(client);
        const original = client.query.bind(client);
        client.query = (text: unknown, ...rest: unknown[]) => {
          const statement = typeof text === 'string' ? text : (text as { text?: string })?.text;
          if (recording && typeof statement === 'string') seen.push(statement);
          return original(text, ...rest);
        };
      };
      t.pool.on('acquire', record as never);
      const leases = await t.fence.claim({
        from: sql`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}`,
        limit: 2,
        ttlMs: 60_000,
      });
      recording = false;
      t.pool.off('acquire', record as never);
      expect(leases.length).toBe(2);
      const claims = seen.filter((s) => s.includes('claim_candidates'));
      expect(claims.length).toBe(1);
      expect(claims[0]).toMatch(/FOR UPDATE SKIP LOCKED/);
      for (const lease of leases) await lease.release();
    } finally {
      await t.cleanup();
    }
  });
});
