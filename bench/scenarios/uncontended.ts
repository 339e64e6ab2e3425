// Scenario 1: uncontended acquire + release, each caller on a key of its own.
// pgfence tryLock/release against raw advisory locks on one connection; pgfence
// tryLease/release against the naive lease table and against redlock. At 1 caller, at 16
// callers sharing one PgFence, and at 16 callers over 4 processes (4 each, a PgFence each).
import { LocalArena, ProcessArena, type Arena, type Subject } from '../lib/arena.js';
import { compare, throughput } from '../lib/compare.js';
import type { BenchContext } from '../lib/context.js';
import { VARIANT_LABELS, type VariantKind } from '../lib/variants.js';

const SCENARIO = '1. uncontended acquire + release';

const SUBJECTS: VariantKind[] = [
  'raw-advisory',
  'pgfence-lock',
  'naive-lease',
  'pgfence-lease',
  'redlock',
  'select-1',
];

export async function uncontended(ctx: BenchContext): Promise<void> {
  const p = ctx.params;
  const arenas: { id: string; arena: Arena; extra: VariantKind[] }[] = [
    // The sync and async commits ride along at 1 caller: their difference is the fsync cost.
    {
      id: '1',
      arena: new LocalArena(ctx.env(), 1),
      extra: ['commit-sync', 'commit-async', 'pgfence-lease-generic'],
    },
    {
      id: '16',
      arena: new LocalArena(ctx.env(), 16, '16 callers, 1 process (one PgFence)'),
      extra: [],
    },
    // Two connections per process for each pooled subject: 4 processes × every subject open at
    // once must stay well inside a shared server's max_connections.
    { id: '16x4', arena: new ProcessArena(ctx.env({ poolSize: 2 }), 4, 4), extra: [] },
  ];
  for (const { id, arena, extra } of arenas) {
    ctx.log(`  ${arena.description}`);
    const kinds = [...SUBJECTS, ...extra];
    const subjects: Subject[] = kinds.map((kind) => ({ id: kind, kind }));
    const m = await compare(arena, subjects, p, ctx.log);
    for (const kind of kinds)
      ctx.report.measured(SCENARIO, arena.description, VARIANT_LABELS[kind], m.get(kind));
    const tp = (kind: VariantKind) => throughput(m.get(kind));
    const cfg = arena.description;
    const ratios: [string, VariantKind, VariantKind, string?][] = [
      ['pgfence lock / raw advisory', 'pgfence-lock', 'raw-advisory', 'lock-vs-raw'],
      ['pgfence lease / naive lease', 'pgfence-lease', 'naive-lease', 'lease-vs-naive'],
      ['pgfence lease / redlock', 'pgfence-lease', 'redlock', 'lease-vs-redlock'],
      ['raw advisory / SELECT 1', 'raw-advisory', 'select-1'],
    ];
    for (const [label, a, b, metric] of ratios)
      ctx.report.ratio(SCENARIO, cfg, label, tp(a) / tp(b), metric && `${metric}.${id}`);
    if (id === '1') {
      ctx.report.ratio(
        SCENARIO,
        cfg,
        'experiment (force_generic_plan) / naive lease',
        tp('pgfence-lease-generic') / tp('naive-lease'),
      );
      const sync = m.get('commit-sync');
      const async = m.get('commit-async');
      if (sync?.status === 'ok' && async?.status === 'ok') {
        ctx.report.metric('fsync-ms', sync.p50Ms - async.p50Ms);
        ctx.report.metric('select1-p50-ms', m.get('select-1')?.p50Ms ?? NaN);
      }
    }
  }
}
