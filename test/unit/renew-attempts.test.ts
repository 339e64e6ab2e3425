import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LeaseStore, RenewResult } from '../../src/lease/lease-store.js';

// node:timers/promises keeps its own timers, out of reach of fake timers: route its setTimeout
// through the global one, which the fake clock drives.
vi.mock('node:timers/promises', () => ({
  setTimeout: <T>(ms: number, value?: T, options?: { signal?: AbortSignal }) =>
    new Promise<T | undefined>((resolve, reject) => {
      const timer = globalThis.setTimeout(() => resolve(value), ms);
      options?.signal?.addEventListener('abort', () => {
        globalThis.clearTimeout(timer);
        reject(new Error('aborted'));
      });
    }),
}));
const { renewUntil } = await import('../../src/lease/renew-attempts.js');

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, 'random').mockReturnValue(0.5); // pauses of exactly 50 ms
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const terms = [{ key: 'k', token: 1n, ttlMs: 3_000 }];
const answer = (): RenewResult => ({
  sentAt: performance.now(),
  expiresAt: new Map(),
  busy: new Set(),
});

/** A store whose renew() calls the test answers one by one. */
function fakeStore() {
  const calls: {
    at: number;
    timeoutMs: number;
    fresh: boolean | undefined;
    resolve: (r: RenewResult) => void;
    reject: (e: unknown) => void;
  }[] = [];
  const store = {
    renew: (_terms: unknown, timeoutMs: number, options: { fresh?: boolean }) =>
      new Promise<RenewResult>((resolve, reject) => {
        calls.push({ at: performance.now(), timeoutMs, fresh: options.fresh, resolve, reject });
      }),
  } as unknown as LeaseStore;
  return { store, calls };
}

describe('renewUntil', () => {
  it('returns the first answer, from one attempt on the pooled connection', async () => {
    const { store, calls } = fakeStore();
    const deadline = performance.now() + 2_000;
    const onError = vi.fn();
    const result = renewUntil(store, terms, deadline, { ttlMs: 3_000, skipLocked: true, onError });
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ fresh: false, timeoutMs: 2_000 });
    const renewed = answer();
    calls[0]!.resolve(renewed);
    await expect(result).resolves.toBe(renewed);
    expect(onError).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('reports a failed attempt and retries on a fresh connection after a pause', async () => {
    const { store, calls } = fakeStore();
    const onError = vi.fn();
    const result = renewUntil(store, terms, performance.now() + 2_000, {
      ttlMs: 3_000,
      skipLocked: true,
      onError,
    });
    await vi.advanceTimersByTimeAsync(10);
    const refused = new Error('connection reset');
    calls[0]!.reject(refused);
    await vi.advanceTimersByTimeAsync(0);
    expect(onError).toHaveBeenCalledWith(refused);
    await vi.advanceTimersByTimeAsync(49);
    expect(calls).toHaveLength(1); // still pausing
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    expect(calls[1]).toMatchObject({ fresh: true, at: calls[0]!.at + 60 });
    const renewed = answer();
    calls[1]!.resolve(renewed);
    await expect(result).resolves.toBe(renewed);
  });

  it('starts a second attempt beside a silent one after half the time left, and takes the first answer', async () => {
    const { store, calls } = fakeStore();
    const start = performance.now();
    const result = renewUntil(store, terms, start + 2_000, {
      ttlMs: 3_000, // ttl / 6 = 500 ms < half of 2 s
      skipLocked: true,
      onError: () => {},
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    expect(calls[1]).toMatchObject({ fresh: true, at: start + 1_000, timeoutMs: 1_000 });
    // The first attempt is not given up on: a slow answer from it still counts.
    const late = answer();
    calls[0]!.resolve(late);
    await expect(result).resolves.toBe(late);
    // No third attempt is started after the hedge.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toHaveLength(2);
  });

  it('waits at least ttl / 6 before hedging when that is longer than half the time left', async () => {
    const { store, calls } = fakeStore();
    void renewUntil(store, terms, performance.now() + 2_000, {
      ttlMs: 9_000, // ttl / 6 = 1,500 ms > half of 2 s
      skipLocked: true,
      onError: () => {},
    });
    await vi.advanceTimersByTimeAsync(1_499);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
  });

  it('gives up with null at the deadline, not before, when nothing answers', async () => {
    const { store } = fakeStore();
    let outcome: unknown = 'pending';
    void renewUntil(store, terms, performance.now() + 2_000, {
      ttlMs: 3_000,
      skipLocked: true,
      onError: () => {},
    }).then((r) => (outcome = r));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(outcome).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives up with null rather than start an attempt that cannot fit before the deadline', async () => {
    const { store, calls } = fakeStore();
    const onError = vi.fn();
    const result = renewUntil(store, terms, performance.now() + 120, {
      ttlMs: 3_000,
      skipLocked: true,
      onError,
    });
    await vi.advanceTimersByTimeAsync(30);
    calls[0]!.reject(new Error('refused'));
    // 90 ms left: a 50 ms pause and a 50 ms attempt do not fit.
    await expect(result).resolves.toBeNull();
    expect(calls).toHaveLength(1);
    expect(onError).toHaveBeenCalledTimes(1);
  });
});
