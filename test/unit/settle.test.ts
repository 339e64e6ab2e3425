import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { settle } from '../../src/util/settle.js';
import { MAX_TIMER_MS } from '../../src/util/timers.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const never = () => new Promise<never>(() => {});

describe('settle', () => {
  it('reports the value or the error of a promise that settles in time', async () => {
    await expect(settle(Promise.resolve(7), performance.now() + 100)).resolves.toEqual({
      kind: 'done',
      value: 7,
    });
    const error = new Error('refused');
    await expect(settle(Promise.reject(error), performance.now() + 100)).resolves.toEqual({
      kind: 'failed',
      error,
    });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times out at the deadline, not before', async () => {
    let outcome: unknown;
    void settle(never(), performance.now() + 300).then((o) => (outcome = o));
    await vi.advanceTimersByTimeAsync(299);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome).toEqual({ kind: 'timeout' });
  });

  it('does not time out early on a deadline beyond what setTimeout can express', async () => {
    let outcome: unknown;
    void settle(never(), performance.now() + MAX_TIMER_MS + 1_000).then((o) => (outcome = o));
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(outcome).toEqual({ kind: 'timeout' });
  });

  it('never times out with an infinite deadline (and arms no timer)', async () => {
    let outcome: unknown;
    void settle(never(), Infinity).then((o) => (outcome = o));
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS * 2);
    expect(outcome).toBeUndefined();
  });

  it('ends with "aborted" when the signal aborts, then forgets the signal and the timer', async () => {
    const controller = new AbortController();
    const removed = vi.spyOn(controller.signal, 'removeEventListener');
    const outcome = settle(never(), performance.now() + 10_000, controller.signal);
    await vi.advanceTimersByTimeAsync(10);
    controller.abort();
    await expect(outcome).resolves.toEqual({ kind: 'aborted' });
    expect(removed).toHaveBeenCalledWith('abort', expect.any(Function));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('removes its abort listener when the promise wins', async () => {
    const controller = new AbortController();
    const removed = vi.spyOn(controller.signal, 'removeEventListener');
    await settle(Promise.resolve(1), Infinity, controller.signal);
    expect(removed).toHaveBeenCalledWith('abort', expect.any(Function));
  });

  it('answers "aborted" for a signal already aborted, and keeps a later rejection handled', async () => {
    vi.useRealTimers(); // a real turn of the event loop, for Node to notice unhandled rejections
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      let rejectIt!: (error: Error) => void;
      const pending = new Promise<never>((_, reject) => (rejectIt = reject));
      await expect(settle(pending, Infinity, AbortSignal.abort())).resolves.toEqual({
        kind: 'aborted',
      });
      rejectIt(new Error('too late'));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});
