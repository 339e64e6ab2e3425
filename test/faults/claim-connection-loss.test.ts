import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('a claim whose connection dies mid-statement', () => {
  let t: TestFence;
  let s: string;
  beforeAll(async () => {
    t = await migratedFence();
    s = `"${t.schema}"`;
    await t.pool.query(`CREATE TABLE ${s}.jobs (id int PRIMARY KEY)`);
    await t.pool.query(`INSERT INTO ${s}.jobs SELECT generate_series(1, 5)`);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('leaves nothing locked or leased, and the jobs are claimable at once', async () => {
    // Park the claim between locking its job rows and writing leases: the leases table is
    // locked against writers (EXCLUSIVE lets the statement's plain reads through), so the
    // claim waits inside claim_leases with its candidate rows locked.
    const blocker = await t.pool.connect();
    const probe = await t.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE ${s}.leases IN EXCLUSIVE MODE`);
      const claim = t.fence
        .claim({
          from: sql`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}`,
          limit: 5,
          ttlMs: 60_000,
        })
        .then(
          (leases) => ({ leases }),
          (error: unknown) => ({ error }),
        );
      let pid: number | undefined;
      for (let i = 0; i < 400 && pid === undefined; i += 1) {
        const { rows } = await probe.query<{ pid: number }>(
          `SELECT pid FROM pg_locks
           WHERE locktype = 'relation' AND relation = '${s}.leases'::regclass AND NOT granted`,
        );
        pid = rows[0]?.pid;
        if (pid === undefined) await sleep(25);
      }
      expect(pid).toBeDefined();
      // The parked claim holds the job rows.
      await probe.query('BEGIN');
      const locked = await probe
        .query(`SELECT id FROM ${s}.jobs FOR UPDATE NOWAIT`)
        .catch((e: { code?: string }) => e.code);
      await probe.query('ROLLBACK');
      expect(locked).toBe('55P03');

      await probe.query('SELECT pg_terminate_backend($1)', [pid]);
      const outcome = await claim;
      expect('error' in outcome).toBe(true);
      await blocker.query('COMMIT');
      // The client hears of the termination before the backend has finished rolling back:
      // wait for it to be gone.
      for (let i = 0; i < 400; i += 1) {
        const { rows } = await probe.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
        if (rows.length === 0) break;
        await sleep(25);
      }

      // Nothing leased, nothing locked.
      const { rows } = await probe.query(`SELECT key FROM ${s}.leases`);
      expect(rows).toEqual([]);
      const free = await probe.query(`SELECT id FROM ${s}.jobs FOR UPDATE NOWAIT`);
      expect(free.rowCount).toBe(5);

      const again = await t.fence.claim({
        from: sql`SELECT 'job:' || id AS key FROM ${sql.table(`${t.schema}.jobs`)}`,
        limit: 5,
        ttlMs: 60_000,
      });
      expect(again.map((l) => l.key).sort()).toEqual(['job:1', 'job:2', 'job:3', 'job:4', 'job:5']);
      for (const lease of again) await lease.release();
    } finally {
      await blocker.query('ROLLBACK').catch(() => {});
      blocker.release();
      probe.release();
    }
  });
});
