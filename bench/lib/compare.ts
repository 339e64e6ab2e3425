import type { Arena, Subject } from './arena.js';
import type { RoundResult } from './drive.js';
import { Latencies } from './histogram.js';

/** A subject's figures over all its rounds. */
export interface Measured {
  id: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  samples: number;
}

/** A subject's throughput, or NaN when it did not run (so a ratio with it is NaN too). */
export function throughput(m: Measured | undefined): number {
  return m?.status === 'ok' ? m.opsPerSec : NaN;
}

export interface RoundPlan {
  rounds: number;
  roundMs: number;
  /** A first, unrecorded round per subject: connections opened, plans cached, JIT warm. */
  warmupMs: number;
}

/** The median: one round that a burst of outside load hit does not move it. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * Measures every subject in the same run, alternating: round r runs each subject once, in an
 * order rotated by r, so slow drifts of a shared machine (another job, a checkpoint, the
 * page cache) fall on every subject alike. Throughput is the median of the rounds' figures;
 * latencies are those of all rounds. A subject that fails is reported and dropped.
 */
export async function compare(
  arena: Arena,
  subjects: Subject[],
  plan: RoundPlan,
  log: (line: string) => void,
): Promise<Map<string, Measured>> {
  const out = new Map<string, Measured>();
  const unavailable = await arena.open(subjects);
  const totals = new Map<string, { rates: number[]; latencies: Latencies }>();
  const fail = (id: string, status: 'skipped' | 'failed', reason: string) => {
    out.set(id, { id, status, reason, opsPerSec: NaN, p50Ms: NaN, p99Ms: NaN, samples: 0 });
  };
  for (const [id, why] of unavailable) fail(id, why.status, why.reason);
  let live = subjects.map((s) => s.id).filter((id) => !out.has(id));
  const check = (id: string, r: RoundResult): boolean => {
    if (r.errors === 0) return true;
    fail(id, 'failed', r.firstError ?? 'failed');
    log(`    ${id}: failed: ${r.firstError}`);
    return false;
  };
  try {
    for (const id of [...live]) {
      if (!check(id, await arena.round(id, plan.warmupMs))) live = live.filter((x) => x !== id);
    }
    for (let round = 0; round < plan.rounds; round += 1) {
      const order = live.map((_, i) => live[(i + round) % live.length] as string);
      for (const id of order) {
        if (!live.includes(id)) continue;
        const r = await arena.round(id, plan.roundMs);
        if (!check(id, r)) {
          live = live.filter((x) => x !== id);
          continue;
        }
        const t = totals.get(id) ?? { rates: [], latencies: new Latencies() };
        t.rates.push((r.ops * 1000) / r.elapsedMs);
        t.latencies.add(r.latencies);
        totals.set(id, t);
      }
    }
  } finally {
    await arena.close();
  }
  for (const id of live) {
    const t = totals.get(id);
    if (!t) continue;
    out.set(id, {
      id,
      status: 'ok',
      opsPerSec: median(t.rates),
      p50Ms: t.latencies.at(50),
      p99Ms: t.latencies.at(99),
      samples: t.latencies.count,
    });
  }
  return out;
}
