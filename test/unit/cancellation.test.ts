import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LockTimeoutError } from '../../src/errors.js';
import { Cancellation } from '../../src/util/cancellation.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** How `promise` has settled so far. */
function watch(promise: Promise<unknown>): { state: string; value?: unknown } {
  const seen: { state: string; value?: unknown } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(seen, { state: 'resolved', value }),
    (value: unknown) => Object.assign(seen, { state: 'rejected', value }),
  );
  return seen;
}

describe('Cancellation', () => {
  it('rejects a race with LockTimeoutError once waitMs has passed, not before', async () => {
    const cancel = new Cancellation('job:1', 500, []);
    const seen = watch(cancel.race(new Promise(() => {})));
    await vi.advanceTimersByTimeAsync(499);
    expect(seen.state).toBe('pending');
    expect(cancel.cancelled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.state).toBe('rejected');
    expect(seen.value).toBeInstanceOf(LockTimeoutError);
    expect(seen.value).toMatchObject({ key: 'job:1', waitMs: 500, code: 'LOCK_TIMEOUT' });
    expect(cancel.reason).toBe(seen.value);
  });

  it('lets the raced promise win when it settles first', async () => {
    const cancel = new Cancellation('k', 500, []);
    const seen = watch(cancel.race(Promise.resolve('granted')));
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual({ state: 'resolved', value: 'granted' });
    cancel.dispose();
  });

  it("ends with the caller's signal's own reason", async () => {
    const controller = new AbortController();
    const cancel = new Cancellation('k', 10_000, [undefined, controller.signal]);
    const seen = watch(cancel.race(new Promise(() => {})));
    const reason = new Error('shutting down');
    controller.abort(reason);
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual({ state: 'rejected', value: reason });
  });

  it('keeps the first reason: a later deadline or signal does not replace it', async () => {
    const controller = new AbortController();
    const cancel = new Cancellation('k', 100, [controller.signal]);
    const first = new Error('first');
    cancel.cancel(first);
    controller.abort(new Error('second'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(cancel.reason).toBe(first);
    await expect(cancel.race(Promise.resolve(1))).rejects.toBe(first);
  });

  it('is cancelled from the start by a signal that has already aborted', async () => {
    const reason = new Error('already');
    const cancel = new Cancellation('k', 100, [AbortSignal.abort(reason)]);
    expect(cancel.cancelled).toBe(true);
    await expect(cancel.race(Promise.resolve(1))).rejects.toBe(reason);
  });

  it('arms no timer for a wait of 0 or Infinity', () => {
    new Cancellation('k', 0, []);
    new Cancellation('k', Infinity, []);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('dispose removes its timer and signal listeners: nothing cancels it afterwards', async () => {
    const controller = new AbortController();
    const removed = vi.spyOn(controller.signal, 'removeEventListener');
    const cancel = new Cancellation('k', 100, [controller.signal]);
    expect(vi.getTimerCount()).toBe(1);
    cancel.dispose();
    expect(vi.getTimerCount()).toBe(0);
    expect(removed).toHaveBeenCalledWith('abort', expect.any(Function));
    controller.abort(new Error('late'));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(cancel.cancelled).toBe(false);
  });

  it('sleep waits ms, or until wake settles, and leaves no timer behind', async () => {
    const cancel = new Cancellation('k', Infinity, []);
    const slept = watch(cancel.sleep(300));
    await vi.advanceTimersByTimeAsync(299);
    expect(slept.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(slept.state).toBe('resolved');

    let wake!: () => void;
    const woken = watch(cancel.sleep(10_000, new Promise<void>((r) => (wake = r))));
    await vi.advanceTimersByTimeAsync(50);
    wake();
    await vi.advanceTimersByTimeAsync(0);
    expect(woken.state).toBe('resolved');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sleep rejects with the reason when the wait ends first, and clears its timer', async () => {
    const cancel = new Cancellation('k', 200, []);
    const slept = watch(cancel.sleep(10_000));
    await vi.advanceTimersByTimeAsync(200);
    expect(slept.state).toBe('rejected');
    expect(slept.value).toBeInstanceOf(LockTimeoutError);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps nothing of a race once it has settled: a long wait does not grow with its polls', async () => {
    vi.useRealTimers();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const cancel = new Cancellation('k', Infinity, []);
    const refs: WeakRef<object>[] = [];
    // One poll: a step raced and won, then a sleep. Its own function, so no frame of the test
    // holds its value afterwards.
    const poll = async (n: number): Promise<void> => {
      const value = { n };
      refs.push(new WeakRef(value));
      await cancel.race(Promise.resolve(value));
      await cancel.sleep(0);
    };
    for (let n = 0; n < 100; n += 1) await poll(n);
    // A WeakRef keeps its target until the current job ends; collect after it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    // Still cancellable after all those races.
    const last = watch(cancel.race(new Promise(() => {})));
    cancel.cancel(new Error('closing'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(last.state).toBe('rejected');
  });
});
