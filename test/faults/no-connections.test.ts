// No connection to be had: the server has no slot left for the role (53300), or the caller's
// own pool is fully used by the caller. Calls fail with typed errors in bounded time, and a
// lease already held is either still renewed or lost loudly, never silently.
import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, LockLostError, UnavailableError, type PgFence } from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { createRole, type TestRole } from '../support/role.js';
import { settledWithin, sleep } from '../support/wait.js';

const CONNECT_MS = 1_000;
const LIMIT_MS = 5_000;

async function expectUnavailable(call: Promise<unknown>): Promise<void> {
  const outcome = call.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  expect(await settledWithin(call, LIMIT_MS)).not.toBeNull();
  const error = await outcome;
  expect(error).toBeInstanceOf(UnavailableError);
  expect((error as UnavailableError).cause).toBeDefined();
}

describe('a server with no connection slot left for the role', () => {
  const t = useMigratedFence();
  let role: TestRole;
  const occupying: pg.Client[] = [];

  beforeAll(async () => {
    role = await createRole(t.schema, {}, { connectionLimit: 3 });
  });
  afterAll(async () => {
    await Promise.all(occupying.map((c) => c.end().catch(() => {})));
    await role.drop();
  });

  it('fails new work with UnavailableError (53300) and keeps, or loudly loses, what it holds', async () => {
    const fence = createPgFence({
      connectionString: role.url,
      schema: t.schema,
      poolSize: 1,
      connectTimeoutMs: CONNECT_MS,
      onError: () => {},
    });
    try {
      const held = await fence.lease('held', { ttlMs: 3_000, autoRenew: true });
      // Every other slot of the role taken (the fence keeps what it already has open).
      for (;;) {
        const client = new pg.Client({ connectionString: role.url });
        client.on('error', () => {});
        const failed = await client.connect().then(
          () => null,
          (e: unknown) => e,
        );
        if (failed) {
          expect((failed as { code?: string }).code).toBe('53300');
          break;
        }
        occupying.push(client);
      }
      await expectUnavailable(fence.lock('k', { waitMs: 1_500 }));
      await expectUnavailable(fence.tryLock('k2'));

      await sleep(7_000); // more than two TTLs
      if (held.signal.aborted) {
        expect(held.signal.reason).toBeInstanceOf(LockLostError);
      } else {
        const { rows } = await t.pool.query<{ live: boolean }>(
          `SELECT expires_at > clock_timestamp() AS live FROM "${t.schema}".leases WHERE key = 'held'`,
        );
        expect(rows[0]?.live).toBe(true);
      }
    } finally {
      await Promise.all(occupying.splice(0).map((c) => c.end().catch(() => {})));
      expect(await settledWithin(fence.close(), 8_000)).not.toBeNull();
    }
  }, 30_000);
});

describe("a caller's pool fully used by the caller", () => {
  const t = useMigratedFence();
  let pool: pg.Pool;
  let fence: PgFence;
  const taken: pg.PoolClient[] = [];

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: testUrl(), max: 2 });
    pool.on('error', () => {});
    fence = createPgFence({ pool, schema: t.schema, connectTimeoutMs: CONNECT_MS });
    taken.push(await pool.connect(), await pool.connect());
  });
  afterAll(async () => {
    for (const client of taken) client.release();
    await fence.close();
    await pool.end();
  });

  it.each([
    ['tryLease', (f: PgFence) => f.tryLease('k')],
    ['lease', (f: PgFence) => f.lease('k', { waitMs: 1_500 })],
    ['isCurrent', (f: PgFence) => f.isCurrent('k', 1n)],
    ['claim', (f: PgFence) => f.claim({ from: sql`SELECT 'a' AS key`, limit: 1 })],
    ['reap', (f: PgFence) => f.reap()],
    ['inspect', (f: PgFence) => f.inspect()],
    ['migrate', (f: PgFence) => f.migrate()],
  ])('%s fails with UnavailableError within the connect bound', async (_, run) => {
    await expectUnavailable(run(fence));
  });
});
