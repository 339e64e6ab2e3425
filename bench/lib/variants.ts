// The subjects of the acquire + release comparisons: pgfence's own calls and the baselines.
// Each opens its connections once, then `op(caller)` runs one cycle for that caller on a key
// of its own (no contention). Used in this process and, unchanged, in worker processes.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createPgFence, type PgFence } from '../../src/index.js';
import { NaiveLease } from '../baselines/naive-lease.js';
import { openRedlock } from '../baselines/redis.js';

/** Where and how a subject runs. */
export interface VariantEnv {
  url: string;
  schema: string;
  /** Undefined when no Redis answered: redlock subjects are then skipped. */
  redisUrl: string | undefined;
  /** Connections for pooled subjects (pgfence's pool and the naive lease's alike). */
  poolSize: number;
  /** Unique per process, so two processes never share a key. */
  tag: string;
}

export interface Runner {
  /** One cycle. May return the latency to record (ms) when only part of the cycle counts. */
  op(caller: number): Promise<number | void>;
  close(): Promise<void>;
}

/** Thrown when a subject cannot run here (no Redis); the column is reported as skipped. */
export class SkipError extends Error {}

/** A thrown value as one line for the report. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const VARIANT_KINDS = [
  'select-1',
  'commit-sync',
  'commit-async',
  'raw-advisory',
  'pgfence-lock',
  'naive-lease',
  'pgfence-lease',
  'pgfence-lease-acquire',
  'pgfence-lease-generic',
  'pgfence-semaphore',
  'pgfence-shared',
  'redlock',
] as const;
export type VariantKind = (typeof VARIANT_KINDS)[number];

/** What each subject is, for the report. */
export const VARIANT_LABELS: Record<VariantKind, string> = {
  'select-1': 'raw SELECT 1 (one connection)',
  'commit-sync': 'raw 1-row UPDATE, synchronous commit',
  'commit-async': 'raw 1-row UPDATE, synchronous_commit off',
  'raw-advisory': 'raw pg_try_advisory_lock + pg_advisory_unlock (one connection)',
  'pgfence-lock': 'pgfence tryLock + release',
  'naive-lease': 'naive lease table (upsert … RETURNING token, DELETE)',
  'pgfence-lease': 'pgfence tryLease + release',
  'pgfence-lease-acquire': 'pgfence tryLease (timed) + release',
  'pgfence-lease-generic':
    'experiment: pgfence tryLease + release, its pool with plan_cache_mode=force_generic_plan',
  'pgfence-semaphore': 'pgfence tryLease + release, one semaphore of 16 permits',
  'pgfence-shared': 'pgfence tryLease + release, one shared lease',
  redlock: 'redlock acquire + release (one Redis)',
};

const TTL_MS = 30_000;

function key(env: VariantEnv, caller: number): string {
  return `u:${env.tag}:${caller}`;
}

/**
 * Runs statements on one connection one after another. Callers sharing one connection queue
 * here, as they would in node-pg's own queue (which is deprecated for concurrent use).
 */
function serial(c: pg.Client): (text: string, values?: unknown[]) => Promise<pg.QueryResult> {
  let busy = false;
  const waiting: (() => void)[] = [];
  return async (text, values) => {
    // An idle connection is used at once: one caller pays no queueing at all.
    if (busy) await new Promise<void>((resolve) => waiting.push(resolve));
    else busy = true;
    try {
      return await c.query(text, values);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else busy = false;
    }
  };
}

function client(env: VariantEnv): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: env.url, application_name: 'pgfence-bench' });
  c.on('error', () => {});
  return c.connect().then(() => c);
}

function pool(env: VariantEnv, options?: string): pg.Pool {
  const p = new pg.Pool({
    connectionString: env.url,
    max: env.poolSize,
    application_name: 'pgfence-bench',
    ...(options ? { options } : {}),
  });
  p.on('error', () => {});
  return p;
}

/** A PgFence as an application would create it, with the bench's pool size. */
export function benchFence(
  env: VariantEnv,
  extra: { poolSize?: number; advisorySessions?: number } = {},
): PgFence {
  return createPgFence({
    connectionString: env.url,
    schema: env.schema,
    poolSize: extra.poolSize ?? env.poolSize,
    applicationName: 'pgfence-bench',
    ...(extra.advisorySessions ? { advisorySessions: extra.advisorySessions } : {}),
  });
}

function fenceRunner(env: VariantEnv, cycle: (f: PgFence, key: string) => Promise<void>): Runner {
  const fence = benchFence(env);
  return {
    op: (caller) => cycle(fence, key(env, caller)),
    close: () => fence.close(),
  };
}

/** Opens one subject. Throws `SkipError` when it cannot run here. */
export async function openVariant(kind: VariantKind, env: VariantEnv): Promise<Runner> {
  switch (kind) {
    case 'select-1': {
      const c = await client(env);
      const query = serial(c);
      return {
        op: async () => {
          await query('SELECT 1');
        },
        close: () => c.end(),
      };
    }
    case 'commit-sync':
    case 'commit-async': {
      // The same one-row write, committed with and without waiting for the WAL flush: the
      // difference between the two is this machine's fsync cost.
      const p = pool(env, `-c synchronous_commit=${kind === 'commit-sync' ? 'on' : 'off'}`);
      const table = `"${env.schema}".bench_commits`;
      await p.query(`CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY, n bigint NOT NULL)`);
      const upsert = `INSERT INTO ${table} AS t (id, n) VALUES ($1, 1)
                      ON CONFLICT (id) DO UPDATE SET n = t.n + 1`;
      return {
        op: async (caller) => {
          await p.query(upsert, [key(env, caller)]);
        },
        close: () => p.end(),
      };
    }
    case 'raw-advisory': {
      const c = await client(env);
      const query = serial(c);
      // A lock id per caller, in a range pgfence's hashed ids are unlikely to hit.
      const base =
        7_000_000_000 +
        (Number.parseInt(env.tag.replace(/\D/g, '').slice(-6) || '0', 10) % 1_000_000) * 100;
      return {
        op: async (caller) => {
          const id = base + caller;
          const got = await query('SELECT pg_try_advisory_lock($1) AS ok', [id]);
          if (!got.rows[0]?.ok) throw new Error(`raw advisory lock ${id} was not free`);
          await query('SELECT pg_advisory_unlock($1)', [id]);
        },
        close: () => c.end(),
      };
    }
    case 'pgfence-lock':
      return fenceRunner(env, async (fence, k) => {
        const lock = await fence.tryLock(k);
        if (!lock) throw new Error(`tryLock(${k}) returned null on a free key`);
        await lock.release();
      });
    case 'naive-lease': {
      const p = pool(env);
      const naive = new NaiveLease(p, env.schema);
      const owner = `bench:${env.tag}`;
      return {
        op: async (caller) => {
          const k = key(env, caller);
          const token = await naive.tryAcquire(k, owner, TTL_MS);
          if (token === null) throw new Error(`naive lease ${k} was not free`);
          await naive.release(k, token);
        },
        close: () => p.end(),
      };
    }
    case 'pgfence-lease':
      return fenceRunner(env, async (fence, k) => {
        const lease = await fence.tryLease(k, { ttlMs: TTL_MS });
        if (!lease) throw new Error(`tryLease(${k}) returned null on a free key`);
        await lease.release();
      });
    case 'pgfence-semaphore':
    case 'pgfence-shared': {
      // Every caller of the process on one key: a semaphore of 16 permits (never full at 16
      // callers) or a shared lease, so what is measured is the kind's own cost.
      const k = `${kind === 'pgfence-semaphore' ? 'sem' : 'shared'}:${env.tag}`;
      const kindOptions =
        kind === 'pgfence-semaphore' ? { permits: 16 } : { mode: 'shared' as const };
      return fenceRunner(env, async (fence) => {
        const lease = await fence.tryLease(k, { ttlMs: TTL_MS, ...kindOptions });
        if (!lease) throw new Error(`tryLease(${k}) returned null with a permit free`);
        await lease.release();
      });
    }
    case 'pgfence-lease-generic': {
      // Not a baseline: the same calls on connections where PostgreSQL always uses generic
      // plans, to show what re-planning inside the lease functions costs (see RESULTS.md).
      const p = pool(env, '-c plan_cache_mode=force_generic_plan');
      const fence = createPgFence({
        pool: p,
        schema: env.schema,
        applicationName: 'pgfence-bench',
      });
      return {
        op: async (caller) => {
          const lease = await fence.tryLease(key(env, caller), { ttlMs: TTL_MS });
          if (!lease) throw new Error(`tryLease(${key(env, caller)}) returned null on a free key`);
          await lease.release();
        },
        close: async () => {
          await fence.close();
          await p.end();
        },
      };
    }
    case 'pgfence-lease-acquire': {
      const fence = benchFence(env);
      return {
        op: async (caller) => {
          const t0 = performance.now();
          const lease = await fence.tryLease(key(env, caller), { ttlMs: TTL_MS });
          const ms = performance.now() - t0;
          if (!lease) throw new Error(`tryLease(${key(env, caller)}) returned null on a free key`);
          await lease.release();
          return ms;
        },
        close: () => fence.close(),
      };
    }
    case 'redlock': {
      if (!env.redisUrl) throw new SkipError('no Redis answered at 127.0.0.1:6379');
      const { redlock, close } = openRedlock(env.redisUrl, { retryCount: 0, retryDelay: 10 });
      return {
        op: async (caller) => {
          const lock = await redlock.acquire([`pgfence-bench:${key(env, caller)}`], TTL_MS);
          await lock.release();
        },
        close,
      };
    }
  }
}
