// Shared/exclusive advisory locks, lockAll and fair hand-off across processes (issue 13;
// DESIGN guarantees 1, 11 and 12), with real processes and the mutual-exclusion checker.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { InvalidArgumentError, LockTimeoutError, type PgFence } from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { testUrl, uniqueSchema, useMigratedFence } from '../support/database.js';
import { analyseChecker, createChecker, dropChecker } from '../support/mutex-checker.js';
import { processScript, startScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

interface WorkerResult {
  acquisitions: number;
  errors: string[];
  waitsMs: number[];
}

/**
 * Runs one advisory-kinds-worker per config, in parallel, and returns what each printed. The
 * workers start together: each first waits (shared) for a barrier key that `fence` holds until
 * all of them are queued for it (processes start seconds apart on a loaded machine).
 */
async function runWorkers(
  fence: PgFence,
  pool: pg.Pool,
  configs: Record<string, unknown>[],
): Promise<WorkerResult[]> {
  const barrier = unique('barrier');
  const held = await fence.lock(barrier);
  const workers = configs.map((config) =>
    startScript(processScript('advisory-kinds-worker.ts'), [
      JSON.stringify({ ...config, barrier }),
    ]),
  );
  const id = advisoryKeyId(fence.schema, barrier).toString();
  for (let i = 0; i < 3_000; i++) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
          AND ((classid::int8 << 32) | objid::int8) = $1::int8`,
      [id],
    );
    if (rows[0]!.n >= configs.length) break;
    await sleep(20);
  }
  await held.release();
  const runs = await Promise.all(workers.map((w) => w.finished));
  return runs.map((run) => {
    expect(run.stderr, run.stderr).toBe('');
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout.trim()) as WorkerResult;
  });
}

const recordedOf = (perProcess: Record<string, number>) =>
  Object.values(perProcess).reduce((n, c) => n + c, 0);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

describe('advisory lock kinds', () => {
  const appName = uniqueSchema('kinds');
  const t = useMigratedFence({ applicationName: appName });
  let checker: string;

  beforeAll(async () => {
    checker = await createChecker(testUrl());
  });
  afterAll(async () => {
    await dropChecker(testUrl(), checker);
  });

  /** Advisory locks granted to (or awaited by) connections named `name`. */
  async function serverLocks(name: string, granted: boolean): Promise<number> {
    const { rows } = await t.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted = $2 AND a.application_name = $1`,
      [name, granted],
    );
    return rows[0]!.n;
  }

  describe('shared and exclusive', () => {
    it('readers overlap, writers are alone: 3 processes × (4 readers + 2 writers) on one key', async () => {
      const key = unique('rw');
      const base = { scenario: 'rw', url: testUrl(), schema: t.schema, checker, keys: [key] };
      const results = await runWorkers(
        t.fence,
        t.pool,
        ['p1', 'p2', 'p3'].map((name) => ({
          ...base,
          name,
          durationMs: 5_000,
          holdMs: 15,
          readers: 4,
          writers: 2,
        })),
      );
      for (const result of results) expect(result.errors).toEqual([]);
      const figures = await analyseChecker(testUrl(), checker);
      const perProcess = figures.perKeyAndProcess[key] ?? {};
      console.log(
        `[shared/exclusive] acquisitions=${recordedOf(perProcess)} conflicts=${figures.modeConflicts[key]} ` +
          `most inside at once=${figures.maxInside[key]} perProcess=${JSON.stringify(perProcess)}`,
      );
      const recorded = Object.values(perProcess).reduce((n, c) => n + c, 0);
      expect(recorded).toBe(results.reduce((n, r) => n + r.acquisitions, 0));
      expect(figures.modeConflicts[key]).toBe(0);
      // Readers did share the key, across processes too (12 readers, each holding up to 15 ms).
      expect(figures.maxInside[key]).toBeGreaterThan(2);
      // Writers got in (nobody starved): each process's writers took the key.
      const writes = Object.entries(figures.perHolder).filter(([h]) => /\/1\d\d$/.test(h));
      for (const p of ['p1', 'p2', 'p3']) {
        expect(
          writes.filter(([h]) => h.startsWith(`${p}/`)).reduce((n, [, c]) => n + c, 0),
        ).toBeGreaterThan(0);
      }
    });

    it('a writer asking while readers of two other processes overlap without a gap gets in', async () => {
      const key = unique('starve');
      const readers = [
        t.another({ applicationName: `${appName}_r` }),
        t.another({ applicationName: `${appName}_r` }),
      ];
      const writer = t.another({ applicationName: `${appName}_r` });
      const stop = performance.now() + 6_000;
      let gapless = true;
      let inside = 0;
      let entered = 0;
      let writerAsked = Infinity;
      // Three readers per process, staggered, each holding 150 ms: the key is never free of
      // readers, so a writer without preference would wait for as long as they go on.
      const loops = readers.flatMap((fence, p) =>
        [0, 1, 2].map(async (i) => {
          await sleep((p * 3 + i) * 25);
          while (performance.now() < stop) {
            const lock = await fence.lock(key, { mode: 'shared', waitMs: 10_000 });
            inside += 1;
            entered += 1;
            await sleep(150);
            inside -= 1;
            if (inside === 0 && performance.now() < writerAsked) gapless = false;
            await lock.release();
          }
        }),
      );
      // Let every reader in first (sessions open slowly on a loaded machine), then ask.
      for (let i = 0; i < 500 && entered < 12; i++) await sleep(10);
      gapless = true;
      expect(inside).toBeGreaterThan(0);
      writerAsked = performance.now();
      const lock = await writer.lock(key, { waitMs: 5_000 });
      const waited = performance.now() - writerAsked;
      const readersInside = inside;
      await lock.release();
      await Promise.all(loops);
      console.log(
        `[writer preference] writer waited ${waited.toFixed(0)} ms; readers gapless before it asked: ${gapless}`,
      );
      expect(gapless).toBe(true);
      expect(readersInside).toBe(0);
      // The writer waits for the readers inside (150 ms each), not for the stream of them.
      expect(waited).toBeLessThan(2_500);
    });

    it('a waiting exclusive caller of this process is not starved by its later shared callers', async () => {
      const key = unique('local');
      const first = await t.fence.lock(key, { mode: 'shared' });
      const second = await t.fence.lock(key, { mode: 'shared' }); // joins at once
      let writerHas = false;
      const writer = t.fence.lock(key, { waitMs: 5_000 }).then((lock) => {
        writerHas = true;
        return lock;
      });
      await sleep(50);
      const late = t.fence.tryLock(key, { mode: 'shared' });
      expect(await late).toBeNull(); // behind the waiting writer
      const lateWait = t.fence.lock(key, { mode: 'shared', waitMs: 5_000 });
      await first.release();
      await sleep(50);
      expect(writerHas).toBe(false);
      await second.release();
      const w = await writer;
      expect(w.mode).toBe('exclusive');
      await sleep(50);
      expect(await serverLocks(appName, true)).toBe(1);
      await w.release();
      const r = await lateWait;
      expect(r.mode).toBe('shared');
      await r.release();
    });

    it('a shared caller of this process waits behind another process’s waiting writer', async () => {
      const key = unique('queue');
      const reader = await t.fence.lock(key, { mode: 'shared' });
      const writerFence = t.another({ applicationName: `${appName}_w` });
      const writer = writerFence.lock(key, { waitMs: 5_000 });
      // The writer is queued in the server:
      for (let i = 0; i < 100 && (await serverLocks(`${appName}_w`, false)) === 0; i++)
        await sleep(20);
      expect(await serverLocks(`${appName}_w`, false)).toBe(1);
      expect(await t.fence.tryLock(key, { mode: 'shared' })).toBeNull();
      const late = t.fence.lock(key, { mode: 'shared', waitMs: 5_000 });
      await sleep(100);
      await reader.release();
      const w = await writer;
      let lateHas = false;
      // A rejection of `late` is the test's failure, seen by the `await late` below.
      late.then(
        () => (lateHas = true),
        () => {},
      );
      await sleep(100);
      expect(lateHas).toBe(false);
      await w.release();
      await (await late).release();
    });

    it('refuses a mode that is neither shared nor exclusive', async () => {
      for (const mode of ['both', 'SHARED', 1, null]) {
        await expect(t.fence.lock(unique('m'), { mode: mode as never })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
        await expect(t.fence.tryLock(unique('m'), { mode: mode as never })).rejects.toBeInstanceOf(
          InvalidArgumentError,
        );
      }
    });
  });

  describe('lockAll', () => {
    it('3 processes take 2–3 random keys of 5 in random order: no overlap, no deadlock, no timeout', async () => {
      const keys = [1, 2, 3, 4, 5].map((n) => unique(`all${n}`));
      const base = { scenario: 'all', url: testUrl(), schema: t.schema, checker, keys };
      const results = await runWorkers(
        t.fence,
        t.pool,
        ['q1', 'q2', 'q3'].map((name) => ({
          ...base,
          name,
          durationMs: 5_000,
          holdMs: 5,
          callers: 3,
          waitMs: 20_000,
        })),
      );
      for (const result of results) expect(result.errors).toEqual([]);
      const figures = await analyseChecker(testUrl(), checker);
      const counts = keys.map((k) => figures.perKeyAndProcess[k] ?? {});
      const conflictsOf = (ks: string[]) =>
        ks.reduce((n, k) => n + (figures.modeConflicts[k] ?? 0), 0);
      const acquired = results.reduce((n, r) => n + r.acquisitions, 0);
      console.log(
        `[lockAll] sets=${acquired} overlaps=${conflictsOf(keys)} waits p50=${percentile(
          results.flatMap((r) => r.waitsMs),
          50,
        ).toFixed(1)} ms p99=${percentile(
          results.flatMap((r) => r.waitsMs),
          99,
        ).toFixed(1)} ms perKey=${JSON.stringify(counts)}`,
      );
      expect(conflictsOf(keys)).toBe(0);
      expect(acquired).toBeGreaterThan(20);
      for (const perProcess of counts) {
        for (const p of ['q1', 'q2', 'q3']) expect(perProcess[p] ?? 0).toBeGreaterThan(0);
      }
    });

    it('holds none of the keys while it waits, then all of them, in the order asked', async () => {
      const [k1, k2, k3] = [unique('a'), unique('b'), unique('c')];
      const name = `${appName}_all`;
      const waiter = t.another({ applicationName: name });
      const blocker = await t.fence.lock(k2);
      const asked = waiter.lockAll([k3, k1, k2], { waitMs: 10_000 });
      let maxHeld = 0;
      for (let i = 0; i < 40; i++) {
        maxHeld = Math.max(maxHeld, await serverLocks(name, true));
        await sleep(10);
      }
      expect(maxHeld).toBe(0);
      // Other callers can take the free keys meanwhile: the waiter holds nothing in-process either.
      const free = await waiter.tryLock(k1);
      expect(free).not.toBeNull();
      await free!.release();
      await blocker.release();
      const locks = await asked;
      expect(locks.map((l) => l.key)).toEqual([k3, k1, k2]);
      expect(await serverLocks(name, true)).toBe(3);
      expect(await t.fence.tryLock(k1)).toBeNull();
      for (const lock of locks) expect(await lock.release()).toBe(true);
      expect(await serverLocks(name, true)).toBe(0);
    });

    it('times out holding nothing, and takes shared sets', async () => {
      const [k1, k2] = [unique('a'), unique('b')];
      const blocker = await t.fence.lock(k2);
      const name = `${appName}_to`;
      const other = t.another({ applicationName: name });
      const error = await other.lockAll([k1, k2], { waitMs: 300 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect(await serverLocks(name, true)).toBe(0);
      await expect(other.lockAll([k1, k2], { waitMs: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
      await blocker.release();
      const a = await other.lockAll([k1, k2], { mode: 'shared' });
      const b = await t.fence.lockAll([k2, k1], { mode: 'shared', waitMs: 0 });
      expect([...a, ...b].map((l) => l.mode)).toEqual(['shared', 'shared', 'shared', 'shared']);
      await expect(t.fence.lockAll([k1], { waitMs: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
      for (const lock of [...a, ...b]) await lock.release();
    });

    it('refuses duplicate keys, an empty list and bad keys with typed errors, taking nothing', async () => {
      const k = unique('dup');
      await expect(t.fence.lockAll([k, 'x', k])).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(t.fence.lockAll([])).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(t.fence.lockAll('abc' as never)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(t.fence.lockAll([k, ''])).rejects.toThrow();
      const free = await t.another().tryLock(k);
      expect(free).not.toBeNull();
      await free!.release();
    });
  });

  describe('fair hand-off across processes', () => {
    it('8 processes on one key: each gets at least 0.8 of a fair share, and a release reaches another process', async () => {
      const key = unique('fair');
      const names = Array.from({ length: 8 }, (_, i) => `f${i + 1}`);
      const base = { scenario: 'fair', url: testUrl(), schema: t.schema, checker, keys: [key] };
      const results = await runWorkers(
        t.fence,
        t.pool,
        names.map((name) => ({
          ...base,
          name,
          durationMs: 6_000,
          holdMs: 2,
          thinkMs: 1,
          callers: 1,
        })),
      );
      for (const result of results) expect(result.errors).toEqual([]);
      const figures = await analyseChecker(testUrl(), checker);
      const perProcess = figures.perKeyAndProcess[key] ?? {};
      const total = Object.values(perProcess).reduce((n, c) => n + c, 0);
      const shares = names.map((p) => ((perProcess[p] ?? 0) * names.length) / total);
      // Who got the key after whom, from the checker's log: a grant to the releasing process
      // again while 7 others wait is a self re-grant.
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      const { rows } = await client.query<{ holder: string }>(
        `SELECT holder FROM ${checker}.events WHERE key = $1 AND kind = 'enter' ORDER BY seq`,
        [key],
      );
      await client.end();
      let self = 0;
      for (let i = 1; i < rows.length; i++) {
        if (rows[i]!.holder === rows[i - 1]!.holder) self += 1;
      }
      const waits = results.flatMap((r) => r.waitsMs);
      console.log(
        `[fairness] grants=${total} shares of a fair share: min ${Math.min(...shares).toFixed(2)} max ` +
          `${Math.max(...shares).toFixed(2)}; self re-grants ${((100 * self) / rows.length).toFixed(1)}%; ` +
          `acquire wait p50 ${percentile(waits, 50).toFixed(1)} ms p99 ${percentile(waits, 99).toFixed(1)} ms`,
      );
      expect(figures.modeConflicts[key]).toBe(0);
      expect(total).toBeGreaterThan(40);
      for (const share of shares) expect(share).toBeGreaterThanOrEqual(0.8);
      // Polling waiters lost 91–97% of releases to the releaser; a FIFO queue in the server gives
      // nearly every release to another process.
      expect(self / rows.length).toBeLessThan(0.2);
    });
  });
});
