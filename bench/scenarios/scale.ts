// Scenario 5a: scale. Acquire + release on a table holding N live leases, against the same on
// an empty table (two schemas, alternating rounds), at 1 and 16 callers (one PgFence).
import { LocalArena } from '../lib/arena.js';
import { compare, throughput } from '../lib/compare.js';
import type { BenchContext } from '../lib/context.js';
import { insertLeases } from './reaper.js';

const SCENARIO = '5. scale';

export async function scale(ctx: BenchContext): Promise<void> {
  const rows = ctx.params.liveRows;
  const empty = await ctx.schemaFor('empty');
  const full = await ctx.schemaFor('full');
  ctx.log(`  inserting ${rows.toLocaleString('en-US')} live leases`);
  await insertLeases(ctx, full, 'live:', rows, '1 day');
  await ctx.admin.query(`VACUUM ANALYZE "${empty}".leases`);
  const n = rows.toLocaleString('en-US');
  for (const callers of [1, 16]) {
    const arena = new LocalArena(
      ctx.env(),
      callers,
      callers === 1 ? '1 caller' : '16 callers (one PgFence)',
    );
    ctx.log(`  ${arena.description}`);
    const m = await compare(
      arena,
      [
        { id: 'empty', kind: 'pgfence-lease', schema: empty },
        { id: 'full', kind: 'pgfence-lease', schema: full },
        // What generic plans would change (see RESULTS.md): at 1 caller only, it is the slow one.
        ...(callers === 1
          ? [
              { id: 'empty-generic', kind: 'pgfence-lease-generic' as const, schema: empty },
              { id: 'full-generic', kind: 'pgfence-lease-generic' as const, schema: full },
            ]
          : []),
      ],
      ctx.params,
      ctx.log,
    );
    ctx.report.measured(
      SCENARIO,
      arena.description,
      'tryLease + release, empty table',
      m.get('empty'),
    );
    ctx.report.measured(
      SCENARIO,
      arena.description,
      `tryLease + release, ${n} live leases`,
      m.get('full'),
    );
    if (callers === 1) {
      ctx.report.measured(
        SCENARIO,
        arena.description,
        'experiment: force_generic_plan, empty table',
        m.get('empty-generic'),
      );
      ctx.report.measured(
        SCENARIO,
        arena.description,
        `experiment: force_generic_plan, ${n} live leases`,
        m.get('full-generic'),
      );
      ctx.report.ratio(
        SCENARIO,
        arena.description,
        'experiment (force_generic_plan): cost full / empty',
        throughput(m.get('empty-generic')) / throughput(m.get('full-generic')),
      );
    }
    ctx.report.ratio(
      SCENARIO,
      arena.description,
      `cost with ${n} live rows / empty (throughput empty ÷ full)`,
      throughput(m.get('empty')) / throughput(m.get('full')),
      `scale-cost-ratio.${callers}`,
    );
  }
}
