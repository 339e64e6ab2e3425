// Scenario 5b: one process holding N leases with autoRenew. Every statement pgfence sends is
// counted through the pool's client class (pg_stat_statements is seldom preloaded, and would
// count other users of the server too); reported: renewal statements per renewal interval
// per 1,000 leases, and the memory the held leases cost.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPgFence, type Lease } from '../../src/index.js';
import type { BenchContext } from '../lib/context.js';

const SCENARIO = '5. scale';
const TTL_MS = 3_000;
const CONCURRENCY = 64;

/** Statements seen by clients of one pool: all of them, and those that renew. */
class StatementCounter {
  total = 0;
  renewals = 0;
  reset(): void {
    this.total = 0;
    this.renewals = 0;
  }
  see(query: unknown): void {
    const text = typeof query === 'string' ? query : (query as { text?: unknown } | null)?.text;
    this.total += 1;
    if (typeof text === 'string' && /renew/i.test(text)) this.renewals += 1;
  }
}

function countingPool(url: string, counter: StatementCounter): pg.Pool {
  class CountingClient extends pg.Client {}
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  (CountingClient.prototype as unknown as { query: (...args: unknown[]) => unknown }).query =
    function (this: pg.Client, ...args: unknown[]) {
      counter.see(args[0]);
      return query.apply(this, args);
    };
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    Client: CountingClient,
    application_name: 'pgfence-bench',
  });
  pool.on('error', () => {});
  return pool;
}

function heap(): { heapUsed: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

export async function renewals(ctx: BenchContext): Promise<void> {
  const n = ctx.params.renewLeases;
  const schema = await ctx.schemaFor('renew');
  const counter = new StatementCounter();
  const pool = countingPool(ctx.url, counter);
  const errors: unknown[] = [];
  const fence = createPgFence({
    pool,
    schema,
    applicationName: 'pgfence-bench',
    onError: (e) => errors.push(e),
  });
  const config = `${n.toLocaleString('en-US')} leases, autoRenew, ttl ${TTL_MS / 1000} s`;
  const leases: Lease[] = [];
  try {
    const before = heap();
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) {
          const i = next++;
          const lease = await fence.tryLease(`renew:${i}`, { ttlMs: TTL_MS, autoRenew: true });
          if (!lease) throw new Error(`tryLease(renew:${i}) returned null on a free key`);
          leases.push(lease);
        }
      }),
    );
    const acquireMs = performance.now() - t0;
    const after = heap();
    // Watch whole renewal intervals, starting once every lease is held.
    const tickMs = TTL_MS / 3;
    const watchMs = Math.max(tickMs * 2, Math.round(ctx.params.renewWatchMs / tickMs) * tickMs);
    counter.reset();
    await new Promise((r) => setTimeout(r, watchMs));
    const { total, renewals: renewCount } = counter;
    const lost = leases.filter((l) => l.signal.aborted).length;
    const live = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".leases WHERE expires_at > clock_timestamp()`,
    );
    const ticks = watchMs / tickMs;
    const perTickPer1000 = renewCount / ticks / (n / 1000);
    const t1 = performance.now();
    await Promise.all(leases.map((l) => l.release()));
    const releaseMs = performance.now() - t1;
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: 'acquire all (64 at a time), then release all',
      status: 'ok',
      opsPerSec: (n * 1000) / acquireMs,
      note: `leases/s acquiring; release of all took ${releaseMs.toFixed(0)} ms`,
    });
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: 'holding, renewing',
      status: lost === 0 && errors.length === 0 ? 'ok' : 'failed',
      note:
        `${renewCount} renewal statements (${total} statements in all) in ${(watchMs / 1000).toFixed(0)} s = ` +
        `${(renewCount / ticks).toFixed(1)} per ${tickMs} ms tick = ${perTickPer1000.toFixed(2)} per tick per 1,000 leases; ` +
        `${live.rows[0]?.n ?? '?'} live in the table, ${lost} lost` +
        (errors.length > 0
          ? `; ${errors.length} background errors, first: ${String(errors[0])}`
          : ''),
    });
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: 'memory held for the leases',
      status: 'ok',
      note:
        `heap +${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB ` +
        `(${((after.heapUsed - before.heapUsed) / n).toFixed(0)} B per lease), ` +
        `rss +${((after.rss - before.rss) / 2 ** 20).toFixed(1)} MiB` +
        ((globalThis as { gc?: unknown }).gc ? '' : ' (no --expose-gc: rough)'),
    });
    ctx.report.metric('renew-queries-per-tick-per-1000', lost === 0 ? perTickPer1000 : NaN);
    ctx.report.metric('renew-heap-bytes-per-lease', (after.heapUsed - before.heapUsed) / n);
  } finally {
    await fence.close();
    await pool.end();
  }
}
