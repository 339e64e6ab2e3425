// Scenario 8: the cost of the lease kinds. 16 callers in one PgFence: plain leases (a key each)
// beside one semaphore of 16 permits and one shared lease that all 16 hold at once, acquire +
// release per second, in interleaved rounds. The semaphore's and the shared lease's callers
// share one statement per batch like plain leases do (acquire_lease_batch).
import { LocalArena, type Subject } from '../lib/arena.js';
import { compare, throughput } from '../lib/compare.js';
import type { BenchContext } from '../lib/context.js';
import { VARIANT_LABELS, type VariantKind } from '../lib/variants.js';

const SCENARIO = '8. lease kinds, 16 callers';

const KINDS: VariantKind[] = ['pgfence-lease', 'pgfence-semaphore', 'pgfence-shared'];

export async function leaseKinds(ctx: BenchContext): Promise<void> {
  const arena = new LocalArena(ctx.env(), 16, '16 callers, 1 process (one PgFence)');
  ctx.log(`  ${arena.description}`);
  const subjects: Subject[] = KINDS.map((kind) => ({ id: kind, kind }));
  const m = await compare(arena, subjects, ctx.params, ctx.log);
  for (const kind of KINDS)
    ctx.report.measured(SCENARIO, arena.description, VARIANT_LABELS[kind], m.get(kind));
  const tp = (kind: VariantKind) => throughput(m.get(kind));
  ctx.report.ratio(
    SCENARIO,
    arena.description,
    'semaphore (16 permits) / plain lease',
    tp('pgfence-semaphore') / tp('pgfence-lease'),
    'kinds.semaphore-vs-plain.16',
  );
  ctx.report.ratio(
    SCENARIO,
    arena.description,
    'shared lease / plain lease',
    tp('pgfence-shared') / tp('pgfence-lease'),
    'kinds.shared-vs-plain.16',
  );
}
