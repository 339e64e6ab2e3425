// Scenario 5c: what renewing many leases costs on an analyzed table (the state a production
// table is in once autovacuum has run: the planner then has statistics, which is where
// version 1's statements went quadratic). Reported:
//  - one renew_leases(…, p_skip_locked => true) statement for 1,000 / 10,000 / 20,000 leases,
//    median of 5, and the renewals per second that makes;
//  - the database CPU time of one process holding 20,000 auto-renewed leases at TTL 30 s, read
//    from /proc/<backend pid>/stat (utime + stime of every backend of its pool) over the watch
//    window, as a share of one core. Target: under 5 %. Needs the server on this machine.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPgFence, type Lease } from '../../src/index.js';
import type { BenchContext } from '../lib/context.js';
import { cpuSeconds } from '../lib/cpu.js';

const SCENARIO = '5. scale';
const SIZES = [1_000, 10_000, 20_000];
const HELD = 20_000;
const HELD_TTL_MS = 30_000;
const APP = 'pgfence-bench-cpu';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function statementTimes(ctx: BenchContext, pool: pg.Pool, schema: string): Promise<void> {
  const s = `"${schema}"`;
  for (const n of SIZES) {
    await pool.query(`DELETE FROM ${s}.leases`);
    await pool.query(
      `INSERT INTO ${s}.leases (key, owner, token, acquired_at, expires_at)
       SELECT 'k' || g, 'bench', ${s}.next_token(), clock_timestamp(),
              clock_timestamp() + interval '1 hour'
       FROM generate_series(1, $1::int) g`,
      [n],
    );
    await pool.query(`VACUUM ANALYZE ${s}.leases`);
    const { rows } = await pool.query<{ k: string[]; t: string[] }>(
      `SELECT array_agg(key) AS k, array_agg(token::text) AS t FROM ${s}.leases`,
    );
    const params = [rows[0]!.k, rows[0]!.t, 'bench', rows[0]!.k.map(() => 30_000)];
    const times: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const t0 = performance.now();
      const r = await pool.query(
        `SELECT count(*)::int AS n FROM ${s}.renew_leases($1::text[], $2::bigint[], $3, $4::float8[], true)`,
        params,
      );
      times.push(performance.now() - t0);
      if (r.rows[0].n !== n) throw new Error(`renewed ${r.rows[0].n} of ${n} leases`);
    }
    const ms = median(times);
    ctx.report.row({
      scenario: SCENARIO,
      config: `${n.toLocaleString('en-US')} leases, analyzed table`,
      subject: 'one renewal statement',
      status: 'ok',
      opsPerSec: (n * 1000) / ms,
      note: `renewals/s; statement median ${ms.toFixed(1)} ms (${times.map((t) => t.toFixed(0)).join(', ')})`,
    });
    ctx.report.metric(`renew-statement-ms-${n}`, ms);
  }
  await pool.query(`DELETE FROM ${s}.leases`);
}

async function heldCpu(ctx: BenchContext, admin: pg.Pool, schema: string): Promise<void> {
  const errors: unknown[] = [];
  const fence = createPgFence({
    connectionString: ctx.url,
    schema,
    applicationName: APP,
    onError: (e) => errors.push(e),
  });
  const leases: Lease[] = [];
  const config = `${HELD.toLocaleString('en-US')} leases, autoRenew, ttl ${HELD_TTL_MS / 1000} s, analyzed`;
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < HELD) {
          const i = next++;
          const lease = await fence.tryLease(`held:${i}`, { ttlMs: HELD_TTL_MS, autoRenew: true });
          if (!lease) throw new Error(`tryLease(held:${i}) returned null on a free key`);
          leases.push(lease);
        }
      }),
    );
    await admin.query(`ANALYZE "${schema}".leases`);
    const watchMs = ctx.params.quick ? 20_000 : 60_000;
    const backends = async (): Promise<number[]> =>
      (
        await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = $1`,
          [APP],
        )
      ).rows.map((r) => r.pid);
    const pids = await backends();
    const before = await cpuSeconds(pids);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, watchMs));
    // A backend the pool opened during the window counts with all its CPU (an overestimate,
    // never an underestimate); one that closed makes the figure unreadable.
    const later = (await backends()).filter((pid) => !pids.includes(pid));
    const after = await cpuSeconds(pids);
    const added = await cpuSeconds(later);
    const wallS = (performance.now() - t0) / 1000;
    const lost = leases.filter((l) => l.signal.aborted).length;
    const share =
      before === null || after === null || added === null ? NaN : (after - before + added) / wallS;
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: 'database CPU while renewing',
      status: lost === 0 && errors.length === 0 && share < 0.05 ? 'ok' : 'failed',
      note: Number.isNaN(share)
        ? `backend CPU not readable (server not on this machine?); ${lost} lost`
        : `${(share * 100).toFixed(2)} % of one core over ${wallS.toFixed(0)} s ` +
          `(${pids.length + later.length} backends, target < 5 %); ${lost} lost` +
          (errors.length > 0 ? `; ${errors.length} background errors` : ''),
    });
    ctx.report.metric('renew-db-cpu-share-20000', share);
  } finally {
    await Promise.allSettled(leases.map((l) => l.release()));
    await fence.close();
  }
}

export async function renewalStatement(ctx: BenchContext): Promise<void> {
  const schema = await ctx.schemaFor('renewstmt');
  const pool = new pg.Pool({ connectionString: ctx.url, max: 2 });
  pool.on('error', () => {});
  try {
    await statementTimes(ctx, pool, schema);
    await heldCpu(ctx, pool, schema);
  } finally {
    await pool.end();
  }
}
