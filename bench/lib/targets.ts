// The targets, checked against the metrics the scenarios recorded.
import { fmtRatio, type Report } from './report.js';

interface Target {
  target: string;
  metric: string;
  op: '>=' | '<=';
  bound: number;
  show: (v: number) => string;
}

const ms = (v: number) => `${v.toFixed(2)} ms`;
const share = (v: number) => `${v.toFixed(2)} of a fair share`;

const TARGETS: Target[] = [
  {
    target: 'advisory tryLock+release ≥ 0.85× raw, 1 caller',
    metric: 'lock-vs-raw.1',
    op: '>=',
    bound: 0.85,
    show: fmtRatio,
  },
  {
    target: 'advisory tryLock+release ≥ 0.85× raw, 16 callers (one PgFence)',
    metric: 'lock-vs-raw.16',
    op: '>=',
    bound: 0.85,
    show: fmtRatio,
  },
  {
    target: 'advisory tryLock+release ≥ 0.85× raw, 16 callers (4 processes)',
    metric: 'lock-vs-raw.16x4',
    op: '>=',
    bound: 0.85,
    show: fmtRatio,
  },
  {
    target: 'lease acquire+release ≥ 1.2× naive, 1 caller',
    metric: 'lease-vs-naive.1',
    op: '>=',
    bound: 1.2,
    show: fmtRatio,
  },
  {
    target: 'lease acquire+release ≥ 1.5× naive, 16 callers (one PgFence)',
    metric: 'lease-vs-naive.16',
    op: '>=',
    bound: 1.5,
    show: fmtRatio,
  },
  {
    target: 'hand-off p99 ≤ 25 ms, pgfence leases',
    metric: 'handoff.pgfence-lease.p99',
    op: '<=',
    bound: 25,
    show: ms,
  },
  {
    target: 'hand-off p99 ≤ 25 ms, pgfence locks',
    metric: 'handoff.pgfence-lock.p99',
    op: '<=',
    bound: 25,
    show: ms,
  },
  {
    target: 'no caller below half a fair share, pgfence leases',
    metric: 'handoff.pgfence-lease.min-share',
    op: '>=',
    bound: 0.5,
    show: share,
  },
  {
    target: 'no caller below half a fair share, pgfence locks',
    metric: 'handoff.pgfence-lock.min-share',
    op: '>=',
    bound: 0.5,
    show: share,
  },
  {
    target: 'contended acquire p99 ≤ ZooKeeper 3-server p99, pgfence leases (8 processes)',
    metric: 'contended7.lease-vs-zk3',
    op: '<=',
    bound: 1,
    show: fmtRatio,
  },
  {
    target: 'contended acquire p99 ≤ ZooKeeper 3-server p99, pgfence locks (8 processes)',
    metric: 'contended7.lock-vs-zk3',
    op: '<=',
    bound: 1,
    show: fmtRatio,
  },
  {
    target: 'every process ≥ 0.8 of a fair share, pgfence leases (8 processes)',
    metric: 'contended7.pgfence-lease.min-share',
    op: '>=',
    bound: 0.8,
    show: share,
  },
  {
    target: 'every process ≥ 0.8 of a fair share, pgfence locks (8 processes)',
    metric: 'contended7.pgfence-lock.min-share',
    op: '>=',
    bound: 0.8,
    show: share,
  },
  {
    target: 'claiming ≥ 0.6× the plain SKIP LOCKED loop',
    metric: 'claim-vs-plain',
    op: '>=',
    bound: 0.6,
    show: fmtRatio,
  },
  {
    target: 'claiming ≥ 1.5× pg-boss fetch({ batchSize: 10 }) + complete',
    metric: 'claim-vs-pgboss',
    op: '>=',
    bound: 1.5,
    show: fmtRatio,
  },
  {
    target: 'claiming ≥ 1.5× graphile-worker batched',
    metric: 'claim-vs-graphile',
    op: '>=',
    bound: 1.5,
    show: fmtRatio,
  },
  {
    target: 'claim pickup p99 ≤ 20 ms (task inserted while a claimer waits)',
    metric: 'claim-pickup-p99',
    op: '<=',
    bound: 20,
    show: ms,
  },
  {
    target: 'acquire p99 during reaping ≤ 2× without',
    metric: 'reap-p99-ratio',
    op: '<=',
    bound: 2,
    show: fmtRatio,
  },
  {
    target: 'acquire+release with 1M live rows ≤ 1.2× empty table, 1 caller',
    metric: 'scale-cost-ratio.1',
    op: '<=',
    bound: 1.2,
    show: fmtRatio,
  },
  {
    target: 'acquire+release with 1M live rows ≤ 1.2× empty table, 16 callers',
    metric: 'scale-cost-ratio.16',
    op: '<=',
    bound: 1.2,
    show: fmtRatio,
  },
  {
    target: 'semaphore acquire+release ≥ 0.8× a plain lease’s, 16 callers (one PgFence)',
    metric: 'kinds.semaphore-vs-plain.16',
    op: '>=',
    bound: 0.8,
    show: fmtRatio,
  },
  {
    target: '≤ 1 renewal query per tick per 1,000 auto-renewed leases',
    metric: 'renew-queries-per-tick-per-1000',
    op: '<=',
    bound: 1,
    show: (v) => v.toFixed(2),
  },
];

/** Adds a met / not met line per target to the report. */
export function checkTargets(
  report: Report,
  notes: Record<string, string>,
  liveRows: number,
): void {
  for (const t of TARGETS) {
    const target = t.target.replace(
      '1M live rows',
      `${liveRows.toLocaleString('en-US')} live rows`,
    );
    const v = report.metrics[t.metric];
    if (v === undefined || Number.isNaN(v)) {
      const note = notes[t.metric];
      report.check({ target, measured: '—', met: undefined, ...(note ? { note } : {}) });
      continue;
    }
    report.check({
      target,
      measured: t.show(v),
      met: t.op === '>=' ? v >= t.bound : v <= t.bound,
    });
  }
}
