// Semaphores, shared/exclusive leases and several keys at once (guarantees 11 and 12), with
// several processes and the mutual-exclusion checker.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  LockTimeoutError,
  PermitsMismatchError,
  type Lease,
} from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { analyseChecker, createChecker, dropChecker } from '../support/mutex-checker.js';
import { processScript, startScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

interface WorkerResult {
  acquisitions: number;
  tryNulls: number;
  errors: string[];
  waitP50: number;
  waitP99: number;
  waitMax: number;
}

describe('lease kinds', () => {
  const t = useMigratedFence();
  let checker: string;

  beforeAll(async () => {
    checker = await createChecker(testUrl());
  });
  afterAll(async () => {
    await dropChecker(testUrl(), checker);
  });

  async function runWorkers(
    n: number,
    config: (i: number) => Record<string, unknown>,
  ): Promise<WorkerResult[]> {
    const workers = Array.from({ length: n }, (_, i) =>
      startScript(processScript('kinds-worker.ts'), [
        JSON.stringify({
          url: testUrl(),
          schema: t.schema,
          checker,
          name: `p${i + 1}`,
          ...config(i),
        }),
      ]),
    );
    const runs = await Promise.all(workers.map((w) => w.finished));
    return runs.map((run) => {
      expect(run.stderr, run.stderr).toBe('');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout.trim()) as WorkerResult;
      expect(result.errors).toEqual([]);
      return result;
    });
  }

  it('semaphore: 3 processes × 6 callers, 3 permits — never more than 3, 3 reached, tokens unique', async () => {
    const key = unique('sem');
    const results = await runWorkers(3, () => ({
      scenario: 'semaphore',
      keys: [key],
      permits: 3,
      callers: 6,
      durationMs: 5_000,
      holdMs: 20,
    }));
    const figures = await analyseChecker(testUrl(), checker);
    const acquired = results.reduce((n, r) => n + r.acquisitions, 0);
    console.log(
      `[semaphore] acquisitions=${acquired} maxInside=${figures.maxInside[key]} ` +
        `tryNull=${results.reduce((n, r) => n + r.tryNulls, 0)} perProcess=${JSON.stringify(figures.perKeyAndProcess[key])}`,
    );
    expect(acquired).toBeGreaterThan(30);
    expect(figures.maxInside[key]).toBe(3);
    expect(figures.duplicateTokens).toBe(0);
    for (const p of ['p1', 'p2', 'p3']) {
      expect(figures.perKeyAndProcess[key]?.[p] ?? 0).toBeGreaterThan(0);
    }
  });

  it('semaphore: a full one gives tryLease null, a mismatched count is refused, every holder is current', async () => {
    const key = unique('full');
    const other = t.another();
    const held: Lease[] = [];
    held.push(await t.fence.lease(key, { permits: 2 }));
    held.push(await other.lease(key, { permits: 2 }));
    expect(held[1]!.token).toBeGreaterThan(held[0]!.token);
    expect(await t.fence.tryLease(key, { permits: 2 })).toBeNull();
    for (const lease of held) expect(await t.fence.isCurrent(key, lease.token)).toBe(true);

    const mismatch = await other.lease(key, { permits: 3 }).catch((e: unknown) => e);
    expect(mismatch).toBeInstanceOf(PermitsMismatchError);
    expect((mismatch as PermitsMismatchError).code).toBe('PERMITS_MISMATCH');
    expect((mismatch as PermitsMismatchError).heldPermits).toBe(2);
    const shared = await other.tryLease(key, { mode: 'shared' }).catch((e: unknown) => e);
    expect(shared).toBeInstanceOf(PermitsMismatchError);

    // A plain lease waits for every permit to be free, and its token is larger than all of theirs.
    const plain = other.lease(key, { waitMs: 10_000 });
    await sleep(200);
    const { leases } = await t.fence.inspect({ prefix: key });
    expect(leases[0]).toMatchObject({ mode: 'semaphore', permits: 2 });
    expect(leases[0]!.waiters).toEqual([
      expect.objectContaining({ owner: other.owner, mode: 'exclusive', permits: null }),
    ]);
    expect(leases[0]!.holders.map((h) => h.token)).toEqual(held.map((l) => l.token));
    expect(await held[0]!.release()).toBe(true);
    expect(await t.fence.isCurrent(key, held[0]!.token)).toBe(false);
    expect(await t.fence.isCurrent(key, held[1]!.token)).toBe(true);
    expect(await held[1]!.release()).toBe(true);
    const exclusive = await plain;
    expect(exclusive.token).toBeGreaterThan(held[1]!.token);
    await exclusive.release();

    for (const bad of [0, -1, 1.5, 'three', Number.NaN]) {
      const error = await t.fence.lease(key, { permits: bad as number }).catch((e: unknown) => e);
      expect(error, String(bad)).toBeInstanceOf(InvalidArgumentError);
    }
    const both = await t.fence.lease(key, { permits: 2, mode: 'shared' }).catch((e: unknown) => e);
    expect(both).toBeInstanceOf(InvalidArgumentError);
  });

  it('semaphore: a holder that stops renewing frees its permit at its expiry, and the reaper removes it', async () => {
    const key = unique('expire');
    const other = t.another();
    const short = await other.lease(key, { permits: 1, ttlMs: 600 });
    const started = performance.now();
    const next = await t.fence.lease(key, { permits: 1, ttlMs: 10_000, waitMs: 10_000 });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(next.token).toBeGreaterThan(short.token);
    expect(short.signal.aborted).toBe(true);
    expect(await short.release()).toBe(false);
    await next.release();
  });

  it('shared/exclusive: readers overlap, writers are exclusive, an exclusive token is larger than all before it', async () => {
    const key = unique('rw');
    const results = await runWorkers(3, () => ({
      scenario: 'rw',
      keys: [key],
      callers: 5,
      writers: 1,
      durationMs: 5_000,
      holdMs: 20,
    }));
    const figures = await analyseChecker(testUrl(), checker);
    const acquired = results.reduce((n, r) => n + r.acquisitions, 0);
    const writerWaitMax = Math.max(...results.map((r) => r.waitMax));
    console.log(
      `[shared/exclusive] acquisitions=${acquired} maxInside=${figures.maxInside[key]} ` +
        `writerWaitMax=${writerWaitMax.toFixed(0)}ms`,
    );
    expect(acquired).toBeGreaterThan(50);
    expect(figures.modeConflicts[key]).toBe(0);
    expect(figures.exclusiveRegressions[key]).toBe(0);
    expect(figures.duplicateTokens).toBe(0);
    // Readers did overlap.
    expect(figures.maxInside[key]).toBeGreaterThan(1);
    // Writers were not starved: each got in well within its 30 s wait.
    expect(writerWaitMax).toBeLessThan(15_000);
  });

  it('shared/exclusive: a writer asking while readers overlap without a gap gets in well within its wait', async () => {
    const key = unique('stream');
    let stop = false;
    let writerAskedAt = Infinity;
    let writerInAt = Infinity;
    const grants: number[] = [];
    // Three readers in other PgFences, each holding 60 ms and asking again at once, started
    // 20 ms apart: the key always has a shared holder, never a gap a writer could slip into.
    const stream = [0, 1, 2].map(async (i) => {
      const fence = t.another();
      await sleep(i * 20);
      while (!stop) {
        const lease = await fence.lease(key, { mode: 'shared', ttlMs: 5_000, waitMs: 20_000 });
        grants.push(performance.now());
        await sleep(60);
        await lease.release();
      }
    });
    await sleep(500);
    writerAskedAt = performance.now();
    const writer = await t.fence.lease(key, { waitMs: 20_000 });
    writerInAt = performance.now();
    const waited = writerInAt - writerAskedAt;
    expect(await t.fence.isCurrent(key, writer.token)).toBe(true);
    await sleep(50);
    await writer.release();
    stop = true;
    await Promise.all(stream);
    const passed = grants.filter((at) => at > writerAskedAt + 50 && at < writerInAt).length;
    console.log(
      `[writer in a reader stream] waited ${waited.toFixed(0)} ms; readers passed it: ${passed}`,
    );
    expect(grants.filter((at) => at < writerAskedAt).length).toBeGreaterThan(5);
    expect(waited).toBeLessThan(5_000);
    // Without a place in the queue the writer would wait until the stream ends (never, here);
    // only readers whose requests crossed the writer's first two round trips got in before it.
    expect(passed).toBeLessThanOrEqual(6);
  });

  it('several keys: an exclusive set asking while readers of each of its keys overlap without a gap gets in well within its wait', async () => {
    const key = unique('set-stream');
    const other = unique('set-other');
    let stop = false;
    let writerAskedAt = Infinity;
    let writerInAt = Infinity;
    const grants: number[] = [];
    // As the single-key test above, on both keys of the set: each always has a shared holder,
    // in other PgFences, so a set that stood in one queue at a time would be passed for ever.
    const stream = [key, other].flatMap((k, j) =>
      [0, 1, 2].map(async (i) => {
        const fence = t.another();
        await sleep(i * 20 + j * 10);
        while (!stop) {
          const lease = await fence.lease(k, { mode: 'shared', ttlMs: 5_000, waitMs: 20_000 });
          grants.push(performance.now());
          await sleep(60);
          await lease.release();
        }
      }),
    );
    await sleep(500);
    writerAskedAt = performance.now();
    const writer = await t.fence.leaseAll([other, key], { waitMs: 20_000 });
    writerInAt = performance.now();
    const waited = writerInAt - writerAskedAt;
    for (const lease of writer) expect(await t.fence.isCurrent(lease.key, lease.token)).toBe(true);
    await sleep(50);
    await Promise.all(writer.map((lease) => lease.release()));
    stop = true;
    await Promise.all(stream);
    const passed = grants.filter((at) => at > writerAskedAt + 50 && at < writerInAt).length;
    console.log(
      `[set in a reader stream] waited ${waited.toFixed(0)} ms; readers passed it: ${passed}`,
    );
    expect(grants.filter((at) => at < writerAskedAt).length).toBeGreaterThan(10);
    // Without places in the keys' queues the set would wait until the streams end (never).
    expect(waited).toBeLessThan(5_000);
    expect(passed).toBeLessThanOrEqual(12);
  });

  it('several keys: 3 processes take 2–3 random keys of 5 in random order — no overlap, no deadlock, no timeout', async () => {
    const keys = Array.from({ length: 5 }, (_, i) => unique(`set${i}`));
    const results = await runWorkers(3, () => ({
      scenario: 'set',
      keys,
      callers: 4,
      durationMs: 5_000,
      holdMs: 10,
    }));
    const figures = await analyseChecker(testUrl(), checker);
    const acquired = results.reduce((n, r) => n + r.acquisitions, 0);
    console.log(`[leaseAll] sets=${acquired}`);
    expect(acquired).toBeGreaterThan(30);
    for (const key of keys) expect(figures.maxInside[key]).toBe(1);
  });

  it('several keys: a caller that cannot have every key holds none, also while it waits', async () => {
    const [k1, k2, k3] = [unique('a'), unique('b'), unique('c')];
    const other = t.another();
    const blocker = await other.lease(k2);
    const waiting = t.fence.leaseAll([k3, k1, k2], { waitMs: 10_000 });
    await sleep(100);
    // Nothing of the set is held meanwhile: a third party gets k1 and k3 at once (the set
    // stands only in k2's queue, the key that keeps it waiting).
    const third = t.another();
    const a = await third.tryLease(k1);
    const c = await third.tryLease(k3);
    expect(a).not.toBeNull();
    expect(c).not.toBeNull();
    await a!.release();
    await c!.release();
    for (let i = 0; i < 5; i += 1) {
      await sleep(100);
      // Whatever places in the keys' queues it has taken since, it holds no lease of its set.
      const { rows } = await t.pool.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM "${t.schema}".leases WHERE owner = $1)::int
              + (SELECT count(*) FROM "${t.schema}".lease_holders WHERE owner = $1)::int AS n`,
        [t.fence.owner],
      );
      expect(rows[0]!.n).toBe(0);
    }
    await blocker.release();
    const leases = await waiting;
    expect(leases.map((l) => l.key)).toEqual([k3, k1, k2]);
    for (const l of leases) expect(await t.fence.isCurrent(l.key, l.token)).toBe(true);
    await Promise.all(leases.map((l) => l.release()));

    const dup = await t.fence.leaseAll([k1, k1]).catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(InvalidArgumentError);
    const empty = await t.fence.leaseAll([]).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(InvalidArgumentError);
    const held = await other.lease(k1);
    const timeout = await t.fence.leaseAll([k1, k2], { waitMs: 300 }).catch((e: unknown) => e);
    expect(timeout).toBeInstanceOf(LockTimeoutError);
    expect(await t.fence.tryLease(k2)).not.toBeNull();
    await held.release();
  });

  it('several keys in shared mode overlap each other and exclude writers', async () => {
    const [k1, k2] = [unique('s1'), unique('s2')];
    const a = await t.fence.leaseAll([k1, k2], { mode: 'shared' });
    const b = await t.another().leaseAll([k2, k1], { mode: 'shared' });
    expect(await t.fence.tryLease(k1)).toBeNull();
    const tokens = [...a, ...b].map((l) => l.token);
    expect(new Set(tokens).size).toBe(4);
    for (const l of [...a, ...b]) await l.release();
    const w = await t.fence.tryLease(k1);
    expect(w).not.toBeNull();
    expect(w!.token).toBeGreaterThan(tokens.reduce((m, x) => (x > m ? x : m)));
    await w!.release();
  });
});
