// Scenario 2: contended hand-off. 8 callers on one key, each in a loop acquire → release →
// 1 ms of work outside the lock. Hand-off latency is the time from a holder starting its
// release to the next grant to another caller (a releaser that takes the key straight back
// is counted as a self re-grant, not as a hand-off); fairness is each caller's share of the
// grants. Subjects: pgfence leases and locks
// with a PgFence per caller (as 8 processes would have: wake-ups must cross instances), the
// same with 8 callers sharing one PgFence, the naive lease polling every 10 ms, and redlock
// retrying every 10 ms. Every grant also checks that nobody else holds the key.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { PgFence } from '../../src/index.js';
import { NaiveLease } from '../baselines/naive-lease.js';
import { openRedlock } from '../baselines/redis.js';
import { describe } from '../lib/arena.js';
import type { BenchContext } from '../lib/context.js';
import { Latencies } from '../lib/histogram.js';
import { benchFence, errorMessage, SkipError } from '../lib/variants.js';

const SCENARIO = '2. contended hand-off (8 callers, one key)';
const CALLERS = 8;
const TTL_MS = 10_000;
const POLL_MS = 10;
/** Work between two critical sections: without it a polling releaser wins its own key back. */
const THINK_MS = 1;

/** One caller's way to take and give back the key. */
interface Contender {
  /** Resolves once held; returns the release. */
  acquire(): Promise<() => Promise<unknown>>;
}

interface Subject {
  id: string;
  label: string;
  open(key: string): Promise<{ contenders: Contender[]; close(): Promise<void> }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function subjects(ctx: BenchContext): Subject[] {
  // One connection each (and one advisory session): 8 instances stand for 8 small processes,
  // and every subject is open at once, so connections are kept few.
  const env = ctx.env({ poolSize: 1 });
  const lease = (f: PgFence, key: string): Contender => ({
    acquire: async () => {
      const l = await f.lease(key, { ttlMs: TTL_MS, waitMs: 30_000 });
      return () => l.release();
    },
  });
  const lock = (f: PgFence, key: string): Contender => ({
    acquire: async () => {
      const l = await f.lock(key, { waitMs: 30_000 });
      return () => l.release();
    },
  });
  /** `CALLERS` contenders over `n` PgFences: one each (n = CALLERS) or all on one (n = 1). */
  const onFences =
    (n: number, contender: (f: PgFence, key: string) => Contender): Subject['open'] =>
    async (key) => {
      const fs = Array.from({ length: n }, () => benchFence(env, { advisorySessions: 1 }));
      return {
        contenders: Array.from({ length: CALLERS }, (_, i) => contender(fs[i % n] as PgFence, key)),
        close: async () => void (await Promise.allSettled(fs.map((f) => f.close()))),
      };
    };
  return [
    {
      id: 'pgfence-lease',
      label: 'pgfence lease (a PgFence per caller)',
      open: onFences(CALLERS, lease),
    },
    {
      id: 'pgfence-lock',
      label: 'pgfence lock (a PgFence per caller)',
      open: onFences(CALLERS, lock),
    },
    {
      id: 'pgfence-lease-shared',
      label: 'pgfence lease (8 callers, one PgFence)',
      open: onFences(1, lease),
    },
    {
      id: 'pgfence-lock-shared',
      label: 'pgfence lock (8 callers, one PgFence)',
      open: onFences(1, lock),
    },
    {
      id: 'naive-lease',
      label: `naive lease, polling every ${POLL_MS} ms`,
      open: async (key) => {
        const pools = Array.from({ length: CALLERS }, () => {
          const p = new pg.Pool({
            connectionString: ctx.url,
            max: 1,
            application_name: 'pgfence-bench',
          });
          p.on('error', () => {});
          return p;
        });
        const contenders = pools.map((p, i): Contender => {
          const naive = new NaiveLease(p, ctx.schema);
          return {
            acquire: async () => {
              for (;;) {
                const token = await naive.tryAcquire(key, `bench:${i}`, TTL_MS);
                if (token !== null) return () => naive.release(key, token);
                await sleep(POLL_MS);
              }
            },
          };
        });
        return {
          contenders,
          close: async () => void (await Promise.allSettled(pools.map((p) => p.end()))),
        };
      },
    },
    {
      id: 'redlock',
      label: `redlock, retrying every ${POLL_MS} ms`,
      open: async (key) => {
        if (!ctx.redisUrl) throw new SkipError('no Redis answered at 127.0.0.1:6379');
        const url = ctx.redisUrl;
        const locks = Array.from({ length: CALLERS }, () =>
          openRedlock(url, { retryCount: -1, retryDelay: POLL_MS }),
        );
        const contenders = locks.map(({ redlock }): Contender => ({
          acquire: async () => {
            const l = await redlock.acquire([`pgfence-bench:${key}`], TTL_MS);
            return () => l.release();
          },
        }));
        return {
          contenders,
          close: async () => void (await Promise.allSettled(locks.map((l) => l.close()))),
        };
      },
    },
  ];
}

interface Tally {
  handoffs: Latencies;
  grants: number[];
  violations: number;
  selfGrants: number;
  elapsedMs: number;
  error: string | undefined;
}

function newTally(): Tally {
  return {
    handoffs: new Latencies(),
    grants: [],
    violations: 0,
    selfGrants: 0,
    elapsedMs: 0,
    error: undefined,
  };
}

/** Runs the contenders for `durationMs`; grants after the deadline are not counted. */
async function round(contenders: Contender[], durationMs: number, tally: Tally): Promise<void> {
  let holders = 0;
  let releasedAt: number | undefined;
  let releasedBy = -1;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    contenders.map(async (c, i) => {
      while (performance.now() < end && tally.error === undefined) {
        let release: () => Promise<unknown>;
        try {
          release = await c.acquire();
        } catch (error) {
          tally.error ??= errorMessage(error);
          return;
        }
        const now = performance.now();
        if (holders > 0) tally.violations += 1;
        holders += 1;
        if (now < end) {
          tally.grants[i] = (tally.grants[i] ?? 0) + 1;
          if (releasedBy === i) tally.selfGrants += 1;
          else if (releasedAt !== undefined) tally.handoffs.record(now - releasedAt);
        }
        holders -= 1;
        releasedAt = performance.now();
        releasedBy = i;
        try {
          await release();
        } catch (error) {
          tally.error ??= errorMessage(error);
          return;
        }
        await sleep(THINK_MS);
      }
    }),
  );
  tally.elapsedMs += Math.min(performance.now(), end) - start;
}

export async function handoff(ctx: BenchContext): Promise<void> {
  const p = ctx.params;
  const config = `${CALLERS} callers`;
  const opened: { s: Subject; contenders: Contender[]; close(): Promise<void>; tally: Tally }[] =
    [];
  try {
    for (const s of subjects(ctx)) {
      try {
        const o = await s.open(`handoff:${ctx.runId}:${s.id}`);
        opened.push({
          s,
          ...o,
          tally: newTally(),
        });
      } catch (error) {
        const { status, reason } = describe(error);
        ctx.report.row({
          scenario: SCENARIO,
          config,
          subject: s.label,
          status,
          note: `${status}: ${reason}`,
        });
      }
    }
    // A short warm-up each (connections, LISTEN), then alternating rounds.
    for (const o of opened) {
      const warm = newTally();
      await round(o.contenders, 200, warm);
      o.tally.error = warm.error;
    }
    for (let r = 0; r < p.handoffRounds; r += 1) {
      for (let i = 0; i < opened.length; i += 1) {
        const o = opened[(i + r) % opened.length];
        if (!o || o.tally.error !== undefined) continue;
        await round(o.contenders, p.handoffRoundMs, o.tally);
      }
    }
  } finally {
    await Promise.allSettled(opened.map((o) => o.close()));
  }
  for (const { s, tally } of opened) {
    if (tally.error !== undefined) {
      ctx.report.row({
        scenario: SCENARIO,
        config,
        subject: s.label,
        status: 'failed',
        note: `failed: ${tally.error}`,
      });
      continue;
    }
    const total = tally.grants.reduce((a, b) => a + (b ?? 0), 0);
    const fair = total / CALLERS;
    const shares = Array.from({ length: CALLERS }, (_, i) => (tally.grants[i] ?? 0) / fair);
    const minShare = Math.min(...shares);
    ctx.report.row({
      scenario: SCENARIO,
      config,
      subject: s.label,
      status: 'ok',
      opsPerSec: (total * 1000) / tally.elapsedMs,
      p50Ms: tally.handoffs.at(50),
      p99Ms: tally.handoffs.at(99),
      note:
        `grants/s; shares of a fair share: min ${minShare.toFixed(2)}, max ${Math.max(...shares).toFixed(2)}; ` +
        `self re-grants ${((100 * tally.selfGrants) / Math.max(1, total)).toFixed(0)}%` +
        (tally.violations > 0 ? `; MUTUAL EXCLUSION VIOLATED ${tally.violations}×` : ''),
    });
    ctx.report.metric(`handoff.${s.id}.p99`, tally.handoffs.at(99));
    ctx.report.metric(`handoff.${s.id}.min-share`, tally.violations > 0 ? NaN : minShare);
  }
}
