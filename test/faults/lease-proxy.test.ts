// A holder behind a network that stops answering (a stalled TCP proxy: no reply, no error)
// stops trusting its lease at its own deadline, before anyone else can be granted the key;
// a network that cuts connections costs nothing while the lease lives.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, LockLostError, type PgFence } from '../../src/index.js';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/wait.js';

describe('a lease behind a misbehaving network', () => {
  let t: TestFence;
  let proxy: TcpProxy;
  let behind: PgFence | undefined;

  beforeAll(async () => {
    t = await migratedFence();
    const target = new URL(testUrl());
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
  });
  afterEach(async () => {
    proxy.resume();
    proxy.cut();
    await behind?.close();
    behind = undefined;
  });
  afterAll(async () => {
    await proxy.close();
    await t.cleanup();
  });

  const fenceBehindProxy = () =>
    (behind = createPgFence({
      connectionString: proxy.urlFor(testUrl()),
      schema: t.schema,
      poolSize: 4,
      onError: () => {},
    }));

  it('aborts the signal by the deadline when the database stops answering, before a second client gets the key', async () => {
    const ttlMs = 3_000;
    const marginMs = 300; // the default: min(1 s, ttl / 10)
    const key = 'stalled';
    const fence = fenceBehindProxy();
    const lease = await fence.lease(key, { ttlMs, autoRenew: true });
    let abortedAt: number | undefined;
    lease.signal.addEventListener('abort', () => (abortedAt = performance.now()));
    await sleep(1_500); // at least one renewal went through the proxy
    expect(lease.signal.aborted).toBe(false);

    const stalledAt = performance.now();
    proxy.stall();
    const other = await t.fence.lease(key, { waitMs: 30_000 });
    const grantedAt = performance.now();

    expect(abortedAt).toBeDefined();
    expect(lease.signal.reason).toBeInstanceOf(LockLostError);
    // Strictly before the other client was granted the key…
    expect(abortedAt!).toBeLessThan(grantedAt);
    // …and no later than its deadline: the last renewal confirmed was sent before the stall.
    // (The allowance is only for a timer firing late on a loaded machine.)
    expect(abortedAt! - stalledAt).toBeLessThanOrEqual(ttlMs - marginMs + 750);
    expect(other.token > lease.token).toBe(true);

    // Lost is lost, even while the network is still silent: extend throws at once.
    await expect(lease.extend()).rejects.toBeInstanceOf(LockLostError);
    proxy.resume();
    proxy.cut();
    expect(await lease.release()).toBe(false);
    expect(await t.fence.isCurrent(key, other.token)).toBe(true);
    await other.release();
  });

  it('keeps a lease through connections that are cut, renewing on new ones', async () => {
    const key = 'cut';
    const fence = fenceBehindProxy();
    const lease = await fence.lease(key, { ttlMs: 3_000, autoRenew: true });
    const first = lease.expiresAt.getTime();
    const acceptedBefore = proxy.accepted;
    for (let i = 0; i < 6; i += 1) {
      await sleep(400);
      proxy.cut();
    }
    await sleep(600);
    expect(lease.signal.aborted).toBe(false);
    expect(proxy.accepted).toBeGreaterThan(acceptedBefore);
    expect(lease.expiresAt.getTime()).toBeGreaterThan(first + 1_000);
    expect(await t.fence.isCurrent(key, lease.token)).toBe(true);
    expect(await lease.release()).toBe(true);
  });
});
