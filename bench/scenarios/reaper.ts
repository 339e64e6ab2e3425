// Scenario 4: the reaper. A table holding N expired leases is reaped (`fence.reap()`, batches
// of 1,000, until a short batch) while 16 callers of one PgFence acquire and release leases
// of their own. Reported: rows reaped per second, and the callers' acquire p99 while the
// reaper runs over their acquire p99 without it (measured just before and just after).
import { performance } from 'node:perf_hooks';
import { LocalArena } from '../lib/arena.js';
import type { BenchContext } from '../lib/context.js';
import type { RoundResult } from '../lib/drive.js';
import { Latencies } from '../lib/histogram.js';
import { benchFence, errorMessage } from '../lib/variants.js';

const SCENARIO = '4. reaper';
const CALLERS = 16;
const SLICE_MS = 250;
const QUIET_SLICES = 8;
const BATCH = 1_000;

/** Inserts `rows` leases that expired an hour ago (tokens from the fencing sequence, as real ones). */
export async function insertLeases(
  ctx: BenchContext,
  schema: string,
  prefix: string,
  rows: number,
  expiresIn: string,
): Promise<void> {
  await ctx.admin.query(
    `INSERT INTO "${schema}".leases (key, owner, token, acquired_at, expires_at)
     SELECT $1 || g, 'bench-filler', "${schema}".next_token(),
            clock_timestamp() - interval '2 hours', clock_timestamp() + $3::interval
     FROM generate_series(1, $2::int) g`,
    [prefix, rows, expiresIn],
  );
  await ctx.admin.query(`VACUUM ANALYZE "${schema}".leases`);
}

async function walLsn(ctx: BenchContext): Promise<number> {
  const { rows } = await ctx.admin.query<{ b: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b`,
  );
  return Number(rows[0]?.b ?? NaN);
}

function merge(into: { lat: Latencies; ops: number; ms: number }, r: RoundResult): void {
  into.lat.add(r.latencies);
  into.ops += r.ops;
  into.ms += r.elapsedMs;
}

export async function reaper(ctx: BenchContext): Promise<void> {
  const rows = ctx.params.expiredRows;
  const schema = await ctx.schemaFor('reap');
  ctx.log(`  inserting ${rows.toLocaleString('en-US')} expired leases`);
  await insertLeases(ctx, schema, 'expired:', rows, '-1 hour');
  const config = `${rows.toLocaleString('en-US')} expired rows, ${CALLERS} callers (one PgFence)`;

  const arena = new LocalArena(ctx.env({ schema }), CALLERS);
  const reaperFence = benchFence(ctx.env({ schema, poolSize: 1 }));
  const quiet = { lat: new Latencies(), ops: 0, ms: 0 };
  const busy = { lat: new Latencies(), ops: 0, ms: 0 };
  let reaped = 0;
  let reapMs = 0;
  let failure: string | undefined;
  let walBefore = 0;
  let walBytes = NaN;
  try {
    const unavailable = await arena.open([{ id: 'acquire', kind: 'pgfence-lease-acquire' }]);
    const why = unavailable.get('acquire');
    if (why) throw new Error(why.reason);
    const slice = async () => {
      const r = await arena.round('acquire', SLICE_MS);
      if (r.errors > 0) throw new Error(r.firstError);
      return r;
    };
    await slice(); // warm-up
    for (let i = 0; i < QUIET_SLICES; i += 1) merge(quiet, await slice());
    // Slices that lie wholly inside the reaping window count as "during"; the one the reaper
    // finishes in is dropped.
    let reaping = true;
    // WAL written while reaping: an acquirer's synchronous commit must flush all WAL before
    // its commit record, the reaper's deletions included.
    walBefore = await walLsn(ctx);
    const t0 = performance.now();
    const pass = reaperFence
      .reap({ batchSize: BATCH })
      .then(
        (n) => {
          reaped = n;
          reapMs = performance.now() - t0;
        },
        (error: unknown) => {
          failure = errorMessage(error);
        },
      )
      .finally(() => {
        reaping = false;
      });
    while (reaping) {
      const r = await slice();
      if (reaping) merge(busy, r);
    }
    await pass;
    walBytes = (await walLsn(ctx)) - walBefore;
    for (let i = 0; i < QUIET_SLICES; i += 1) merge(quiet, await slice());
  } catch (error) {
    failure ??= errorMessage(error);
  } finally {
    await arena.close();
    await reaperFence.close();
  }
  if (failure !== undefined) {
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: 'reap + acquire',
      status: 'failed',
      note: `failed: ${failure}`,
    });
    return;
  }
  const left = await ctx.admin.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${schema}".leases WHERE key LIKE 'expired:%'`,
  );
  ctx.report.row({
    scenario: SCENARIO,
    config,
    subject: 'reap() pass, batches of 1,000',
    status: 'ok',
    opsPerSec: (reaped * 1000) / reapMs,
    note:
      `rows/s; ${reaped.toLocaleString('en-US')} rows in ${(reapMs / 1000).toFixed(1)} s; ` +
      `${left.rows[0]?.n ?? '?'} left; WAL ${(walBytes / 2 ** 20).toFixed(0)} MiB ` +
      `(${(walBytes / 2 ** 20 / (reapMs / 1000)).toFixed(0)} MiB/s, callers' included)`,
  });
  for (const [label, w] of [
    ['tryLease, no reaper running', quiet],
    ['tryLease, while reaping', busy],
  ] as const) {
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: label,
      status: w.ops > 0 ? 'ok' : 'failed',
      opsPerSec: (w.ops * 1000) / w.ms,
      p50Ms: w.lat.at(50),
      p99Ms: w.lat.at(99),
      note: `acquire latency; cycles/s (acquire + release); ${w.lat.count} samples`,
    });
  }
  ctx.report.ratio(
    SCENARIO,
    config,
    'acquire p99 while reaping / without',
    busy.lat.at(99) / quiet.lat.at(99),
    'reap-p99-ratio',
  );
}
