// What a test file uses to reach the test database: the URL chosen by global-setup, a pool,
// and a schema of its own so files can run in parallel on one server.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createPgFence, type PgFence, type PgFenceSettings } from '../../src/index.js';

export function testUrl(): string {
  return inject('pgUrl');
}

export function testProvider(): 'url' | 'docker' | 'embedded' {
  return inject('pgProvider');
}

/** A fresh schema name that no other test file uses. */
export function uniqueSchema(prefix = 't'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export function newPool(options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: testUrl(), max: 10, ...options });
  pool.on('error', () => {});
  return pool;
}

/** A database created for one test (for "an empty database" cases); dropped by `drop()`. */
export async function createScratchDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = uniqueSchema('db');
  const admin = new pg.Client({ connectionString: testUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface TestFence {
  schema: string;
  pool: pg.Pool;
  fence: PgFence;
  /** Another PgFence on the same schema (a second process, as far as pgfence can tell). */
  another(options?: PgFenceSettings): PgFence;
  /** Closes every PgFence made here, drops the schema and ends the pool. */
  cleanup(): Promise<void>;
}

/** A migrated schema of its own (`options.schema`, or a fresh one) and a PgFence on it. */
export async function migratedFence(options: PgFenceSettings = {}): Promise<TestFence> {
  const schema = options.schema ?? uniqueSchema();
  const pool = newPool({ max: 20 });
  const fences: PgFence[] = [];
  const another = (extra: PgFenceSettings = {}): PgFence => {
    const f = createPgFence({ connectionString: testUrl(), schema, ...options, ...extra });
    fences.push(f);
    return f;
  };
  const fence = createPgFence({ pool, schema, ...options });
  fences.push(fence);
  await fence.migrate();
  return {
    schema,
    pool,
    fence,
    another,
    async cleanup() {
      await Promise.allSettled(fences.map((f) => f.close()));
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await pool.end();
    },
  };
}

/**
 * The migrated fence of the enclosing describe block (or file): made in its beforeAll, cleaned up
 * in its afterAll. Its schema name can be read at once; the rest only from hooks and tests.
 */
export function useMigratedFence(options: PgFenceSettings = {}): Omit<TestFence, 'cleanup'> {
  const schema = options.schema ?? uniqueSchema();
  let made: TestFence | undefined;
  const get = (): TestFence => {
    if (!made) throw new Error('the test fence is made in beforeAll: use it in hooks and tests');
    return made;
  };
  beforeAll(async () => {
    made = await migratedFence({ ...options, schema });
  });
  afterAll(async () => {
    await made?.cleanup();
  });
  return {
    schema,
    get pool() {
      return get().pool;
    },
    get fence() {
      return get().fence;
    },
    another: (extra) => get().another(extra),
  };
}

/**
 * A connection of its own to the test database for the enclosing describe block, for a
 * transaction a test holds open (a guarded write): connected in its beforeAll, ended in its
 * afterAll.
 */
export function useClient(): pg.Client {
  const client = new pg.Client({ connectionString: testUrl() });
  client.on('error', () => {});
  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    await client.end().catch(() => {});
  });
  return client;
}
