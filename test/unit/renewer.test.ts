import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LeaseHandle } from '../../src/lease/lease-handle.js';
import { termId } from '../../src/lease/lease-sql.js';
import type { LeaseStore, RenewResult } from '../../src/lease/lease-store.js';

// renew-attempts pauses through node:timers/promises, out of reach of fake timers: route it
// through the global setTimeout, which the fake clock drives.
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
const { Renewer } = await import('../../src/lease/renewer.js');

const TTL = 3_000;
const FRACTION = 1 / 3; // renew every second; half an interval of slack is 500 ms

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, 'random').mockReturnValue(0.5); // retry pauses of exactly ttl / 20 = 150 ms
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** The part of a LeaseHandle the renewer uses, recording what it is told. */
function handle(key: string, renewAt: number) {
  const h = {
    key,
    token: 1n,
    ttlMs: TTL,
    holder: false,
    deadline: performance.now() + TTL - 300,
    held: true,
    renewAt,
    confirmed: [] as { sentAt: number; expiresAt: Date }[],
    lost: [] as { why: string; rowGone: boolean | undefined }[],
    confirm(sentAt: number, _ttlMs: number, expiresAt: Date) {
      h.confirmed.push({ sentAt, expiresAt });
      h.renewAt = sentAt + TTL * FRACTION;
    },
    lose(why: string, options: { rowGone?: boolean } = {}) {
      h.held = false;
      h.lost.push({ why, rowGone: options.rowGone });
    },
  };
  return h;
}
type FakeHandle = ReturnType<typeof handle>;

/** A store that answers each renewal with `answer(keys)`, recording when and what was asked. */
function fakeStore(answer: (keys: string[]) => Partial<Record<string, 'renewed' | 'busy'>>) {
  const calls: { at: number; keys: string[] }[] = [];
  const store = {
    renew: (terms: readonly { key: string; token: bigint }[]) => {
      const keys = terms.map((t) => t.key);
      calls.push({ at: performance.now(), keys });
      const outcome = answer(keys);
      const result: RenewResult = {
        sentAt: performance.now(),
        expiresAt: new Map(),
        busy: new Set(),
      };
      for (const t of terms) {
        if (outcome[t.key] === 'renewed') result.expiresAt.set(termId(t.key, t.token), new Date());
        if (outcome[t.key] === 'busy') result.busy.add(termId(t.key, t.token));
      }
      return Promise.resolve(result);
    },
  } as unknown as LeaseStore;
  return { store, calls };
}

const renewAll = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, 'renewed' as const]));
const add = (renewer: InstanceType<typeof Renewer>, h: FakeHandle) =>
  renewer.add(h as unknown as LeaseHandle);

describe('Renewer', () => {
  it('renews a lease when it is due, not before, and then every renewal interval', async () => {
    const { store, calls } = fakeStore(renewAll);
    const renewer = new Renewer(store, FRACTION, () => {});
    const start = performance.now();
    const a = handle('a', start + 1_000);
    add(renewer, a);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([{ at: start + 1_000, keys: ['a'] }]);
    expect(a.confirmed).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls.map((c) => c.at - start)).toEqual([1_000, 2_000]);
    renewer.stop();
  });

  it('sends one statement for the leases due within half an interval; the others fall into step', async () => {
    const { store, calls } = fakeStore(renewAll);
    const renewer = new Renewer(store, FRACTION, () => {});
    const start = performance.now();
    add(renewer, handle('a', start + 1_000));
    add(renewer, handle('b', start + 1_400)); // due within 500 ms of a: goes with it
    add(renewer, handle('c', start + 1_600)); // not yet
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toEqual([{ at: start + 1_000, keys: ['a', 'b'] }]);
    // When c is due, a and b (due again at 2,000) are within the slack: from now on all three
    // share one statement.
    await vi.advanceTimersByTimeAsync(600);
    expect(calls[1]).toEqual({ at: start + 1_600, keys: ['a', 'b', 'c'] });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls[2]).toEqual({ at: start + 2_600, keys: ['a', 'b', 'c'] });
    renewer.stop();
  });

  it('loses a lease whose row is gone, and retries a busy one soon', async () => {
    let busy = true;
    const { store, calls } = fakeStore(() => ({ busy: busy ? 'busy' : 'renewed' }));
    const renewer = new Renewer(store, FRACTION, () => {});
    const start = performance.now();
    const gone = handle('gone', start + 1_000);
    const locked = handle('busy', start + 1_000);
    add(renewer, gone);
    add(renewer, locked);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(gone.lost).toEqual([{ why: expect.stringContaining('gone'), rowGone: true }]);
    expect(locked.lost).toEqual([]);
    expect(locked.renewAt).toBe(start + 1_000 + 150);
    busy = false;
    await vi.advanceTimersByTimeAsync(150);
    expect(calls.map((c) => [c.at - start, c.keys])).toEqual([
      [1_000, ['gone', 'busy']],
      [1_150, ['busy']],
    ]);
    expect(locked.confirmed).toHaveLength(1);
    renewer.stop();
  });

  it('drops leases no longer held without renewing them', async () => {
    const { store, calls } = fakeStore(renewAll);
    const renewer = new Renewer(store, FRACTION, () => {});
    const a = handle('a', performance.now() + 1_000);
    add(renewer, a);
    a.held = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toHaveLength(0);
    renewer.stop();
  });

  it('reports a failure of its own renewal work to onError instead of leaving it unhandled', async () => {
    const { store } = fakeStore(renewAll);
    const onError = vi.fn();
    const renewer = new Renewer(store, FRACTION, onError);
    const a = handle('a', performance.now() + 1_000);
    const bug = new Error('confirm failed');
    a.confirm = () => {
      throw bug;
    };
    add(renewer, a);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(onError).toHaveBeenCalledWith(bug);
    renewer.stop();
  });

  it('stops: no renewal after stop(), no timer left, and later leases are not taken', async () => {
    const { store, calls } = fakeStore(renewAll);
    const renewer = new Renewer(store, FRACTION, () => {});
    add(renewer, handle('a', performance.now() + 1_000));
    renewer.stop();
    expect(vi.getTimerCount()).toBe(0);
    add(renewer, handle('b', performance.now() + 1_000));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toHaveLength(0);
  });
});
