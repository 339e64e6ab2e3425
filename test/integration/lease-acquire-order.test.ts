import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

// acquire_leases serialises each key's acquirers on pg_advisory_xact_lock(class, hashtext(key))
// and takes a batch's locks in a fixed order so that two multi-key acquirers cannot deadlock.
// The order must be that of the locks themselves: two keys whose hashtext collide share a lock,
// and ordering by key text would then take that lock at different places in two batches.

function serialisationClassId(schema: string): number {
  return createHash('sha256').update(`pgfence-acquire\0${schema}`).digest().readInt32BE(0);
}

interface AcquireRow {
  key: string;
  acquired: boolean;
  token: string | null;
}

describe('acquire_leases lock order', () => {
  let t: TestFence;
  const clients: pg.Client[] = [];

  const connect = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: testUrl() });
    client.on('error', () => {});
    await client.connect();
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await t.cleanup();
  });

  it('two batches sharing a hash-colliding pair and one more key never deadlock', async () => {
    const admin = await connect();
    // x and y collide under hashtext; z sorts between them as text and hashes elsewhere.
    const { rows } = await admin.query<{ x: string; y: string; z: string; h: number }>(`
      WITH c AS (SELECT 'k' || i AS k, hashtext('k' || i) AS h FROM generate_series(1, 400000) i),
           pair AS (SELECT min(k) AS x, max(k) AS y, h FROM c GROUP BY h HAVING count(*) = 2)
      SELECT p.x, p.y, p.h, z.k AS z
      FROM pair p
      CROSS JOIN LATERAL (
        SELECT c.k FROM c WHERE c.k > p.x AND c.k < p.y AND c.h <> p.h ORDER BY c.k LIMIT 1
      ) z
      LIMIT 1`);
    expect(rows.length).toBe(1);
    const { x, y, z, h } = rows[0]!;
    const classId = serialisationClassId(t.schema);
    const acquireSql = `SELECT key, acquired, token::text AS token
      FROM "${t.schema}".acquire_leases($1::text[], $2, $3::float8[], NULL)`;

    // A third transaction holds the colliding pair's lock, so both batches queue behind it.
    const blocker = await connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_advisory_xact_lock($1::int4, $2::int4)', [classId, h]);

    const first = await connect();
    const second = await connect();
    const one = first.query<AcquireRow>(acquireSql, [[x, z], 'one', [60_000, 60_000]]);
    one.catch(() => {});
    await sleep(400);
    const two = second.query<AcquireRow>(acquireSql, [[z, y], 'two', [60_000, 60_000]]);
    two.catch(() => {});
    await sleep(400);
    await blocker.query('COMMIT');

    const [a, b] = await Promise.allSettled([one, two]);
    // A deadlock shows up as SQLSTATE 40P01 on one of them (after deadlock_timeout, ~1 s).
    expect(a.status === 'rejected' ? String((a.reason as { code?: string }).code) : 'ok').toBe(
      'ok',
    );
    expect(b.status === 'rejected' ? String((b.reason as { code?: string }).code) : 'ok').toBe(
      'ok',
    );
    const acquired = [
      ...(a.status === 'fulfilled' ? a.value.rows : []),
      ...(b.status === 'fulfilled' ? b.value.rows : []),
    ].filter((r) => r.acquired);
    // Every key went to exactly one of them.
    expect(acquired.map((r) => r.key).sort()).toEqual([x, y, z].sort());
  });
});
