// The contract every lock kind of pgfence must keep, written once and run for each kind
// (test/integration/lease-contract.test.ts, test/integration/advisory-contract.test.ts).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  InvalidKeyError,
  LockTimeoutError,
  type PgFence,
} from '../../src/index.js';
import { describeLifecycle } from './contract-lifecycle.js';
import { testUrl, useMigratedFence } from './database.js';
import { analyseChecker, CheckerClient, createChecker, dropChecker } from './mutex-checker.js';
import { processScript, startScript } from './spawn.js';
import { sleep } from './wait.js';

/**
 * `advisory-shared`: exclusive holders with `mode: 'exclusive'` spelt out, shared try-locks,
 * and in the multi-process run half the callers shared (the checker counts conflicts only).
 * `lease-shared`: the same for leases; tokens are checked as guarantee 11 states them (unique,
 * and an exclusive holder's larger than every token before it; readers enter in any order).
 * `lock-all`: `lockAll` of one key (its all-or-nothing path), `waitMs: 0` as the try.
 */
export type LockKind =
  | 'lease'
  | 'advisory'
  | 'semaphore'
  | 'lease-set'
  | 'election'
  | 'advisory-shared'
  | 'lease-shared'
  | 'lock-all';

interface Held {
  release(): Promise<boolean>;
  readonly signal: AbortSignal;
  readonly token?: bigint;
}

interface Adapter {
  acquire(
    fence: PgFence,
    key: string,
    options?: { waitMs?: number; signal?: AbortSignal },
  ): Promise<Held>;
  tryAcquire(fence: PgFence, key: string): Promise<Held | null>;
  /** Calls the acquire function with arbitrary (possibly bad) arguments. */
  acquireRaw(fence: PgFence, key: unknown, options: unknown): Promise<unknown>;
}

const adapters: Record<LockKind, Adapter> = {
  lease: {
    acquire: (fence, key, options) => fence.lease(key, { ttlMs: 10_000, ...options }),
    tryAcquire: (fence, key) => fence.tryLease(key, { ttlMs: 10_000 }),
    acquireRaw: (fence, key, options) => fence.lease(key as string, options as never),
  },
  // A one-permit semaphore: through the holders' table and the queue, never two at once.
  semaphore: {
    acquire: (fence, key, options) => fence.lease(key, { ttlMs: 10_000, permits: 1, ...options }),
    tryAcquire: (fence, key) => fence.tryLease(key, { ttlMs: 10_000, permits: 1 }),
    acquireRaw: (fence, key, options) =>
      fence.lease(key as string, { permits: 1, ...(options as object) } as never),
  },
  // A set of one key.
  'lease-set': {
    acquire: async (fence, key, options) =>
      (await fence.leaseAll([key], { ttlMs: 10_000, ...options }))[0]!,
    tryAcquire: async (fence, key) =>
      (
        await fence.leaseAll([key], { ttlMs: 10_000, waitMs: 0 }).catch((error: unknown) => {
          if (error instanceof LockTimeoutError) return [null];
          throw error;
        })
      )[0]!,
    acquireRaw: (fence, key, options) => fence.leaseAll([key as string], options as never),
  },
  // A term of an election: the leader is the only holder.
  election: {
    acquire: (fence, key, options) => fence.campaign(key, { ttlMs: 10_000, ...options }),
    tryAcquire: async (fence, key) =>
      fence.campaign(key, { ttlMs: 10_000, waitMs: 0 }).catch((error: unknown) => {
        if (error instanceof LockTimeoutError) return null;
        throw error;
      }),
    acquireRaw: (fence, key, options) => fence.campaign(key as string, options as never),
  },
  advisory: {
    acquire: (fence, key, options) => fence.lock(key, options),
    tryAcquire: (fence, key) => fence.tryLock(key),
    acquireRaw: (fence, key, options) => fence.lock(key as string, options as never),
  },
  'advisory-shared': {
    acquire: (fence, key, options) => fence.lock(key, { ...options, mode: 'exclusive' }),
    tryAcquire: (fence, key) => fence.tryLock(key, { mode: 'shared' }),
    acquireRaw: (fence, key, options) =>
      fence.lock(key as string, { mode: 'shared', ...(options as object) } as never),
  },
  'lease-shared': {
    acquire: (fence, key, options) =>
      fence.lease(key, { ttlMs: 10_000, ...options, mode: 'exclusive' }),
    tryAcquire: (fence, key) => fence.tryLease(key, { ttlMs: 10_000, mode: 'shared' }),
    acquireRaw: (fence, key, options) =>
      fence.lease(key as string, { mode: 'shared', ...(options as object) } as never),
  },
  'lock-all': {
    acquire: async (fence, key, options) => allAsOne(await fence.lockAll([key], options)),
    tryAcquire: async (fence, key) => {
      try {
        return allAsOne(await fence.lockAll([key], { waitMs: 0 }));
      } catch (error) {
        if (error instanceof LockTimeoutError) return null;
        throw error;
      }
    },
    acquireRaw: (fence, key, options) => fence.lockAll([key as string], options as never),
  },
};

/** The locks of one `lockAll` as one handle. */
function allAsOne(locks: { release(): Promise<boolean>; signal: AbortSignal }[]): Held {
  return {
    release: async () => (await Promise.all(locks.map((l) => l.release()))).every(Boolean),
    signal: AbortSignal.any(locks.map((l) => l.signal)),
  };
}

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

interface WorkerResult {
  acquisitions: number;
  tries: number;
  tryNulls: number;
  errors: string[];
}

/** Defines the shared lock contract for one lock kind (call it at the top level of a test file). */
export function describeLockContract(kind: LockKind): void {
  const adapter = adapters[kind];

  describe(`the ${kind} lock contract`, () => {
    const t = useMigratedFence();
    let checker: string;
    describeLifecycle(kind, t);

    beforeAll(async () => {
      checker = await createChecker(testUrl());
    });
    afterAll(async () => {
      await dropChecker(testUrl(), checker);
    });

    it('never has two holders of a key: 3 processes × 8 callers × 3 keys for several seconds', async () => {
      const keys = [unique('a'), unique('b'), unique('c')];
      const workers = [1, 2, 3].map((n) =>
        startScript(processScript('contract-worker.ts'), [
          JSON.stringify({
            kind,
            url: testUrl(),
            schema: t.schema,
            checker,
            keys,
            callers: 8,
            durationMs: 6_000,
            holdMs: 4,
            name: `p${n}`,
          }),
        ]),
      );
      const runs = await Promise.all(workers.map((w) => w.finished));
      const results = runs.map((run) => {
        expect(run.stderr, run.stderr).toBe('');
        expect(run.code).toBe(0);
        return JSON.parse(run.stdout.trim()) as WorkerResult;
      });
      for (const result of results) expect(result.errors).toEqual([]);
      const figures = await analyseChecker(testUrl(), checker);
      const acquired = results.reduce((n, r) => n + r.acquisitions, 0);
      console.log(
        `[${kind} contract] acquisitions=${figures.acquisitions} overlaps=${figures.overlaps} ` +
          `regressions=${figures.regressions} tries=${results.reduce((n, r) => n + r.tries, 0)} ` +
          `tryNull=${results.reduce((n, r) => n + r.tryNulls, 0)} perKey=${JSON.stringify(figures.perKeyAndProcess)}`,
      );
      expect(figures.acquisitions).toBe(acquired);
      // A lockAll is a statement of its own, never batched with other callers' try-locks, so it
      // does fewer rounds in the same time on a loaded machine; exclusion is the point here.
      expect(figures.acquisitions).toBeGreaterThan(kind === 'lock-all' ? 20 : 100);
      if (kind === 'advisory-shared' || kind === 'lease-shared') {
        // Readers overlap by design: only a reader or writer beside a writer is a conflict.
        const conflicts = Object.values(figures.modeConflicts).reduce((n, c) => n + c, 0);
        expect(conflicts).toBe(0);
        expect(Math.max(...Object.values(figures.maxInside))).toBeGreaterThan(1);
      } else expect(figures.overlaps).toBe(0);
      if (kind === 'lease-shared') {
        // Readers granted together enter in any order; every token is still unique, and a
        // writer's is larger than every token of the key before it.
        expect(figures.duplicateTokens).toBe(0);
        expect(Object.values(figures.exclusiveRegressions).reduce((n, c) => n + c, 0)).toBe(0);
      } else if (kind !== 'advisory') {
        expect(figures.regressions).toBe(0);
      }
      // Nobody starves: every process got every key at least once.
      for (const key of keys) {
        for (const p of ['p1', 'p2', 'p3']) {
          expect(figures.perKeyAndProcess[key]?.[p] ?? 0).toBeGreaterThan(0);
        }
      }
    });

    it('queues 16 callers of one process on one key, one at a time', async () => {
      const key = unique('same');
      const recorder = await CheckerClient.connect(testUrl(), checker);
      const before = await analyseChecker(testUrl(), checker);
      try {
        const order: number[] = [];
        await Promise.all(
          Array.from({ length: 16 }, async (_, i) => {
            const held = await adapter.acquire(t.fence, key, { waitMs: 30_000 });
            order.push(i);
            await recorder.enter(key, `in/${i}`, held.token);
            await sleep(5);
            await recorder.exit(key, `in/${i}`);
            expect(await held.release()).toBe(true);
          }),
        );
        // One key's callers in one process are served in arrival order (README, "Waiting");
        // semaphore permits and lease sets make no such promise.
        if (kind !== 'semaphore' && kind !== 'lease-set') {
          expect(order).toEqual(Array.from({ length: 16 }, (_, i) => i));
        }
      } finally {
        await recorder.close();
      }
      const after = await analyseChecker(testUrl(), checker);
      expect(after.acquisitions - before.acquisitions).toBe(16);
      if (kind === 'advisory-shared' || kind === 'lease-shared') {
        // Its multi-process run left readers' overlaps in the log: count conflicts on this key.
        expect(after.modeConflicts[key] ?? 0).toBe(0);
        expect(after.maxInside[key]).toBe(1);
      } else {
        expect(after.overlaps).toBe(before.overlaps);
        expect(after.overlaps).toBe(0);
      }
      // New regressions only: a lease-shared run before this one logged readers out of order.
      if (kind !== 'advisory') expect(after.regressions - before.regressions).toBe(0);
    });

    it('try gives null while another PgFence holds the key, and the lock once it is free', async () => {
      const key = unique('try');
      const other = t.another();
      const held = await adapter.acquire(other, key);
      expect(await adapter.tryAcquire(t.fence, key)).toBeNull();
      expect(await held.release()).toBe(true);
      const mine = await adapter.tryAcquire(t.fence, key);
      expect(mine).not.toBeNull();
      expect(await mine!.release()).toBe(true);
    });

    it('ends a wait with LockTimeoutError after waitMs', async () => {
      const key = unique('timeout');
      // Connected first: this case is about a held key, and a wait that ends before the
      // database answered at all is an UnavailableError (a cold connection on a loaded machine
      // can take longer than the wait).
      const warm = await adapter.acquire(t.fence, key);
      await warm.release();
      const other = t.another();
      const held = await adapter.acquire(other, key);
      try {
        const started = performance.now();
        const error = await adapter
          .acquire(t.fence, key, { waitMs: 1_000 })
          .catch((e: unknown) => e);
        const took = performance.now() - started;
        expect(error).toBeInstanceOf(LockTimeoutError);
        expect((error as LockTimeoutError).code).toBe('LOCK_TIMEOUT');
        expect(took).toBeGreaterThanOrEqual(990);
        expect(took).toBeLessThan(8_000);
      } finally {
        await held.release();
      }
      // Nothing was left behind: the key is free for a third party.
      const third = await adapter.tryAcquire(t.another(), key);
      expect(third).not.toBeNull();
      await third!.release();
    });

    it('ends a wait when the signal aborts, with the signal’s reason', async () => {
      const key = unique('abort');
      const other = t.another();
      const held = await adapter.acquire(other, key);
      try {
        const controller = new AbortController();
        const reason = new Error('caller gave up');
        const waiting = adapter.acquire(t.fence, key, {
          waitMs: 30_000,
          signal: controller.signal,
        });
        setTimeout(() => controller.abort(reason), 200);
        await expect(waiting).rejects.toBe(reason);

        const already = AbortSignal.abort(new Error('already aborted'));
        await expect(adapter.acquire(t.fence, key, { signal: already })).rejects.toBe(
          already.reason,
        );
      } finally {
        await held.release();
      }
      const third = await adapter.tryAcquire(t.another(), key);
      expect(third).not.toBeNull();
      await third!.release();
    });

    it('refuses bad input with a typed error and takes nothing', async () => {
      const appName = unique('bad').replace('-', '_');
      const fence = t.another({ applicationName: appName });
      const badKeys: unknown[] = ['', 'x'.repeat(257), null, undefined, {}, ['k'], 'a\0b', 1.5];
      for (const key of badKeys) {
        const error = await adapter.acquireRaw(fence, key, {}).catch((e: unknown) => e);
        expect(error, String(key)).toBeInstanceOf(InvalidKeyError);
      }
      const badOptions: unknown[] = [
        { waitMs: -1 },
        { waitMs: Number.NaN },
        { waitMs: 'soon' },
        { signal: 'stop' },
        ...(['advisory', 'advisory-shared', 'lease-shared', 'lock-all'].includes(kind)
          ? [{ mode: 'both' }]
          : []),
      ];
      for (const options of badOptions) {
        const error = await adapter.acquireRaw(fence, 'fine', options).catch((e: unknown) => e);
        expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      }
      // Nothing was taken: no lease rows, no advisory locks held by that PgFence's sessions.
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      try {
        const leases = await client.query(
          `SELECT count(*)::int AS n FROM "${t.schema}".leases WHERE key = 'fine'`,
        );
        expect(leases.rows[0].n).toBe(0);
        const locks = await client.query(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND a.application_name = $1`,
          [appName],
        );
        expect(locks.rows[0].n).toBe(0);
      } finally {
        await client.end();
      }
      const free = await adapter.tryAcquire(t.fence, 'fine');
      expect(free).not.toBeNull();
      await free!.release();
    });
  });
}
