import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlreadyReleasedError,
  ClosedError,
  InvalidArgumentError,
  InvalidKeyError,
  LockLostError,
  type Lease,
} from '../../src/index.js';
import { countingFence } from '../support/counting-fence.js';
import { migratedFence, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

describe('leases', () => {
  let t: TestFence;
  let n = 0;
  const key = (name: string) => `${name}-${(n += 1)}`;

  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  const row = async (k: string) =>
    (
      await t.pool.query(
        `SELECT owner, token::text AS token, expires_at, metadata FROM "${t.schema}".leases WHERE key = $1`,
        [k],
      )
    ).rows[0] as { owner: string; token: string; expires_at: Date; metadata: unknown } | undefined;

  it('hands out a handle that matches its row, and release deletes the row', async () => {
    const k = key('basic');
    const lease = await t.fence.lease(k, { ttlMs: 5_000, metadata: { job: 7 } });
    expect(lease.key).toBe(k);
    expect(typeof lease.token).toBe('bigint');
    expect(lease.owner).toBe(t.fence.owner);
    expect(lease.expiresAt).toBeInstanceOf(Date);
    expect(lease.signal.aborted).toBe(false);
    const stored = await row(k);
    expect(stored).toMatchObject({
      owner: t.fence.owner,
      token: lease.token.toString(),
      metadata: { job: 7 },
    });
    expect(stored!.expires_at.getTime()).toBe(lease.expiresAt.getTime());
    expect(await t.fence.isCurrent(k, lease.token)).toBe(true);
    expect(await lease.release()).toBe(true);
    expect(await row(k)).toBeUndefined();
    expect(await t.fence.isCurrent(k, lease.token)).toBe(false);
  });

  it('gives every acquisition a larger token than any before it, across keys', async () => {
    const tokens: bigint[] = [];
    for (let i = 0; i < 5; i += 1) {
      const leases = await Promise.all([key('x'), key('y')].map((k) => t.fence.lease(k)));
      for (const l of leases) tokens.push(l.token);
      await Promise.all(leases.map((l) => l.release()));
    }
    const max = tokens.reduce((a, b) => (a > b ? a : b));
    const next = await t.fence.lease(key('z'));
    expect(next.token > max).toBe(true);
    expect(new Set(tokens).size).toBe(tokens.length);
    await next.release();
  });

  it('tryLease gives null while held (also within one process) and never waits', async () => {
    const k = key('try');
    const held = await t.fence.tryLease(k, { ttlMs: 5_000 });
    expect(held).not.toBeNull();
    expect(await t.fence.tryLease(k)).toBeNull();
    expect(await t.another().tryLease(k)).toBeNull();
    await held!.release();
    const again = await t.another().tryLease(k);
    expect(again).not.toBeNull();
    await again!.release();
  });

  it('throws AlreadyReleasedError on a second release; asyncDispose is idempotent', async () => {
    const lease = await t.fence.lease(key('twice'));
    expect(await lease.release()).toBe(true);
    const error = await lease.release().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlreadyReleasedError);
    expect((error as AlreadyReleasedError).code).toBe('ALREADY_RELEASED');
    await lease[Symbol.asyncDispose]();
    await lease[Symbol.asyncDispose]();

    const other = await t.fence.lease(key('dispose'));
    await other[Symbol.asyncDispose]();
    await other[Symbol.asyncDispose]();
    expect(await row(other.key)).toBeUndefined();
    await expect(other.release()).rejects.toBeInstanceOf(AlreadyReleasedError);
    await expect(other.extend()).rejects.toBeInstanceOf(AlreadyReleasedError);
  });

  it('releases at the end of an `await using` block', async () => {
    const k = key('using');
    let token: bigint;
    {
      await using lease = await t.fence.lease(k);
      token = lease.token;
      expect(await t.fence.isCurrent(k, token)).toBe(true);
    }
    expect(await t.fence.isCurrent(k, token)).toBe(false);
    expect(await row(k)).toBeUndefined();
  });

  it('extend moves the expiry forward; a lease without autoRenew is lost at its deadline', async () => {
    const k = key('extend');
    // A wide margin, so the check below runs well before the database's expiry even on a busy machine.
    const fence = t.another({ safetyMarginMs: 800 });
    const lease = await fence.lease(k, { ttlMs: 1_200 });
    const first = lease.expiresAt;
    await sleep(200);
    const extendedAt = performance.now();
    await lease.extend(1_500);
    expect(lease.expiresAt.getTime()).toBeGreaterThan(first.getTime());
    expect((await row(k))!.expires_at.getTime()).toBe(lease.expiresAt.getTime());
    const lost = new Promise<unknown>((resolve) =>
      lease.signal.addEventListener('abort', () => resolve(lease.signal.reason)),
    );
    const aborted = await lost;
    expect(aborted).toBeInstanceOf(LockLostError);
    // deadline = sent + 1,500 − 800 ms (a little later: a timer is never early)
    expect(performance.now() - extendedAt).toBeGreaterThanOrEqual(650);
    // The holder stopped trusting its lease before the database let it go.
    expect(await t.fence.isCurrent(k, lease.token)).toBe(true);
    await expect(lease.extend()).rejects.toBeInstanceOf(LockLostError);
    // Still its own term in the table: release deletes it, but reports the lease as lost.
    expect(await lease.release()).toBe(false);
    expect(await row(k)).toBeUndefined();
  });

  it('extend after the lease was taken over throws LockLostError and aborts the signal', async () => {
    const k = key('taken');
    const old = await t.fence.lease(k, { ttlMs: 300 });
    await sleep(400);
    const newer = await t.another().lease(k, { ttlMs: 10_000 });
    expect(newer.token > old.token).toBe(true);
    const error = await old.extend(10_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockLostError);
    expect(old.signal.aborted).toBe(true);
    // Release of a key another owner now holds: false, and the newer lease is untouched.
    expect(await old.release()).toBe(false);
    expect(await t.fence.isCurrent(k, newer.token)).toBe(true);
    expect((await row(k))!.token).toBe(newer.token.toString());
    expect(await newer.release()).toBe(true);
  });

  it('release of an expired lease that another owner holds now returns false and leaves it alone', async () => {
    const k = key('stale-release');
    const old = await t.fence.lease(k, { ttlMs: 300 });
    await sleep(400);
    const newer = await t.another().lease(k);
    expect(await old.release()).toBe(false);
    expect(await t.fence.isCurrent(k, newer.token)).toBe(true);
    await newer.release();
  });

  it('autoRenew keeps a lease well past its TTL with one statement per tick', async () => {
    const k = key('renew');
    // 3 s, not less: two files run at once on CI's two cores (see the next test).
    const lease = await t.fence.lease(k, { ttlMs: 3_000, autoRenew: true });
    const first = lease.expiresAt.getTime();
    await sleep(4_500);
    expect(lease.signal.aborted).toBe(false);
    expect(lease.expiresAt.getTime()).toBeGreaterThan(first + 1_500);
    expect(await t.fence.isCurrent(k, lease.token)).toBe(true);
    expect(await lease.release()).toBe(true);
  });

  it('renews many leases in one statement per tick', async () => {
    const counted = countingFence(t.schema);
    // A TTL of 3 s: the suite runs two files at once on CI's two cores, and a 1.5 s TTL left a
    // renewal there less than a second to come back before the lease was (rightly) given up.
    const leases = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        counted.fence.lease(`batch-${i}`, { ttlMs: 3_000, autoRenew: true }),
      ),
    );
    const before = counted.calls('renew_leases');
    await sleep(4_000);
    const calls = counted.calls('renew_leases') - before;
    for (const l of leases) expect(l.signal.aborted).toBe(false);
    // 50 leases over ~4 renewal intervals: a handful of statements, not 50 per interval.
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(20);
    await Promise.all(leases.map((l) => l.release()));
  });

  it('withLease renews by default, returns fn’s result and releases, also when fn throws', async () => {
    const k = key('with');
    let seen: Lease | undefined;
    const result = await t.fence.withLease(
      k,
      async (lease) => {
        seen = lease;
        await sleep(2_500);
        expect(lease.signal.aborted).toBe(false);
        expect(await t.fence.isCurrent(k, lease.token)).toBe(true);
        return 42;
      },
      { ttlMs: 1_200 },
    );
    expect(result).toBe(42);
    expect(await t.fence.isCurrent(k, seen!.token)).toBe(false);

    const boom = new Error('boom');
    await expect(
      t.fence.withLease(k, async (lease) => {
        seen = lease;
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await row(k)).toBeUndefined();
  });

  it('coalesces concurrent acquisitions into shared statements', async () => {
    const counted = countingFence(t.schema);
    const keys = Array.from({ length: 40 }, (_, i) => key(`co${i}`));
    const leases = await Promise.all(keys.map((k) => counted.fence.tryLease(k)));
    const statements = counted.calls('acquire_leases');
    expect(leases.every((l) => l !== null)).toBe(true);
    expect(statements).toBeGreaterThan(0);
    expect(statements).toBeLessThanOrEqual(2);
    expect(new Set(leases.map((l) => l!.token)).size).toBe(40);
    await Promise.all(leases.map((l) => l!.release()));
    const releases = counted.calls('release_leases');
    expect(releases).toBeGreaterThan(0);
    expect(releases).toBeLessThanOrEqual(2);
    expect(await row(keys[0]!)).toBeUndefined();
    await counted.close();
  });

  it('refuses bad input before any SQL runs', async () => {
    let queries = 0;
    const original = t.pool.query.bind(t.pool);
    (t.pool as { query: unknown }).query = (...args: Parameters<typeof original>) => {
      queries += 1;
      return original(...args);
    };
    const originalConnect = t.pool.connect.bind(t.pool);
    (t.pool as { connect: unknown }).connect = (...args: unknown[]) => {
      queries += 1;
      return (originalConnect as (...a: unknown[]) => unknown)(...args);
    };
    try {
      const cases: [() => Promise<unknown>, unknown][] = [
        [() => t.fence.lease(''), InvalidKeyError],
        [() => t.fence.lease('x'.repeat(257)), InvalidKeyError],
        [() => t.fence.lease(7 as unknown as string), InvalidKeyError],
        [() => t.fence.tryLease(null as unknown as string), InvalidKeyError],
        [() => t.fence.lease('k', { ttlMs: 0 }), InvalidArgumentError],
        [() => t.fence.lease('k', { ttlMs: -5 }), InvalidArgumentError],
        [() => t.fence.lease('k', { ttlMs: Number.NaN }), InvalidArgumentError],
        [() => t.fence.lease('k', { ttlMs: Infinity }), InvalidArgumentError],
        [() => t.fence.lease('k', { ttlMs: 1e15 }), InvalidArgumentError],
        [() => t.fence.lease('k', { waitMs: -1 }), InvalidArgumentError],
        [
          () => t.fence.lease('k', { autoRenew: 'yes' as unknown as boolean }),
          InvalidArgumentError,
        ],
        [
          () => t.fence.lease('k', { metadata: [] as unknown as Record<string, unknown> }),
          InvalidArgumentError,
        ],
        [() => t.fence.lease('k', { bogus: 1 } as never), InvalidArgumentError],
        [() => t.fence.tryLease('k', { waitMs: 5 } as never), InvalidArgumentError],
        [() => t.fence.withLease('k', 'not a function' as never), InvalidArgumentError],
      ];
      for (const [call, type] of cases) {
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(type as never);
      }
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(t.fence.lease('k', { metadata: circular })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      expect(queries).toBe(0);
      expect(await row('k')).toBeUndefined();
      const lease = await t.fence.lease(key('bad-extend'));
      queries = 0;
      await expect(lease.extend(-1)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(lease.extend(Number.NaN)).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(queries).toBe(0);
      expect(await lease.release()).toBe(true);
      expect(await row(lease.key)).toBeUndefined();
    } finally {
      (t.pool as { query: unknown }).query = original;
      (t.pool as { connect: unknown }).connect = originalConnect;
    }
  });

  it('close() aborts the signals of held leases and releases them', async () => {
    const fence = t.another();
    const a = await fence.lease(key('close'), { autoRenew: true });
    const b = await fence.lease(key('close'));
    await fence.close();
    expect(a.signal.aborted).toBe(true);
    expect(a.signal.reason).toBeInstanceOf(LockLostError);
    expect(b.signal.aborted).toBe(true);
    expect(await row(a.key)).toBeUndefined();
    expect(await row(b.key)).toBeUndefined();
    expect(await a.release()).toBe(false);
    await expect(fence.lease('after')).rejects.toBeInstanceOf(ClosedError);
  });

  it('adopt() wraps rows acquired elsewhere as renewable, releasable handles', async () => {
    const k = key('adopt');
    const sentAt = performance.now();
    const { rows } = await t.pool.query(
      `SELECT key, token::text AS token, acquired_at, expires_at
       FROM "${t.schema}".acquire_leases(ARRAY[$1], $2, ARRAY[3000::float8], NULL)`,
      [k, t.fence.owner],
    );
    const manager = (t.fence as unknown as { adoptForTest?: unknown }).adoptForTest;
    expect(manager).toBeUndefined();
    const { LeaseManager } = await import('../../src/lease/lease-manager.js');
    const { Database } = await import('../../src/db/database.js');
    const { resolveOptions } = await import('../../src/options.js');
    const options = resolveOptions({ pool: t.pool, schema: t.schema, owner: t.fence.owner });
    const leases = new LeaseManager(new Database(options), options);
    try {
      const [lease] = leases.adopt(
        [
          {
            key: k,
            token: BigInt(rows[0].token),
            acquiredAt: rows[0].acquired_at,
            expiresAt: rows[0].expires_at,
          },
        ],
        { ttlMs: 3_000, autoRenew: true, sentAt },
      );
      await sleep(4_000); // past the TTL: held only if renewed
      expect(lease!.signal.aborted).toBe(false);
      expect(await t.fence.isCurrent(k, lease!.token)).toBe(true);
      expect(await lease!.release()).toBe(true);
      expect(await row(k)).toBeUndefined();
    } finally {
      await leases.close();
    }
  });
});
