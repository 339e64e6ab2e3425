// Renewing or releasing N leases costs O(N) on an analyzed table: the statement time at 20,000
// leases stays within 2.5× that at 10,000 (quadratic plans, as version 1's were once the planner
// had statistics, give about 4×). A ratio of medians on one machine, not a speed target: speed
// is measured in bench/ (renewals scenario).
import { describe, expect, it } from 'vitest';
import { useMigratedFence } from '../support/database.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('renewal and release at scale', () => {
  const t = useMigratedFence();

  async function timings(n: number): Promise<{ renew: number; release: number }> {
    const s = `"${t.schema}"`;
    await t.pool.query(`DELETE FROM ${s}.leases`);
    await t.pool.query(
      `INSERT INTO ${s}.leases (key, owner, token, acquired_at, expires_at)
       SELECT 'k' || g, 'me', ${s}.next_token(), clock_timestamp(), clock_timestamp() + interval '1 hour'
       FROM generate_series(1, $1::int) g`,
      [n],
    );
    await t.pool.query(`VACUUM ANALYZE ${s}.leases`);
    const { rows } = await t.pool.query<{ k: string[]; t: string[] }>(
      `SELECT array_agg(key) AS k, array_agg(token::text) AS t FROM ${s}.leases`,
    );
    const keys = rows[0]!.k;
    const tokens = rows[0]!.t;
    const renews: number[] = [];
    const releases: number[] = [];
    const client = await t.pool.connect();
    try {
      for (let i = 0; i < 3; i += 1) {
        let started = performance.now();
        const renewed = await client.query(
          `SELECT count(*)::int AS n FROM ${s}.renew_leases($1::text[], $2::bigint[], 'me', $3::float8[], true)`,
          [keys, tokens, keys.map(() => 30_000)],
        );
        renews.push(performance.now() - started);
        expect(renewed.rows[0].n).toBe(n);
        await client.query('BEGIN');
        started = performance.now();
        const released = await client.query(
          `SELECT count(*)::int AS n FROM ${s}.release_leases($1::text[], $2::bigint[], 'me', true)`,
          [keys, tokens],
        );
        releases.push(performance.now() - started);
        await client.query('ROLLBACK');
        expect(released.rows[0].n).toBe(n);
      }
    } finally {
      client.release();
    }
    return { renew: median(renews), release: median(releases) };
  }

  it('takes at most 2.5× as long for 20,000 leases as for 10,000', async () => {
    const ten = await timings(10_000);
    const twenty = await timings(20_000);
    console.log(
      `renew 10k ${ten.renew.toFixed(0)} ms, 20k ${twenty.renew.toFixed(0)} ms; ` +
        `release 10k ${ten.release.toFixed(0)} ms, 20k ${twenty.release.toFixed(0)} ms`,
    );
    expect(twenty.renew / ten.renew).toBeLessThanOrEqual(2.5);
    expect(twenty.release / ten.release).toBeLessThanOrEqual(2.5);
  }, 120_000);
});
