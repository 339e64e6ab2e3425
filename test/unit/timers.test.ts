import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, atDeadline, delay, settleWithin, sleep } from '../../src/util/timers.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** Lets the promise callbacks queued so far run. */
const flush = () => vi.advanceTimersByTimeAsync(0);

describe('atDeadline', () => {
  it('calls fn once the clock reaches the deadline, not a millisecond before, and only once', () => {
    const fn = vi.fn();
    atDeadline(performance.now() + 250, fn);
    vi.advanceTimersByTime(249);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waits out a deadline beyond what setTimeout can express, instead of firing after 1 ms', () => {
    const fn = vi.fn();
    const armed = vi.spyOn(globalThis, 'setTimeout');
    const far = MAX_TIMER_MS + 60_000;
    atDeadline(performance.now() + far, fn);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(59_999);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    // Node cuts a longer delay to 1 ms: every step must be one setTimeout honours.
    const steps = armed.mock.calls.map((call) => call[1] ?? 0);
    expect(steps.length).toBeGreaterThan(1);
    expect(Math.max(...steps)).toBeLessThanOrEqual(MAX_TIMER_MS);
  });

  it('calls fn at once, synchronously, when the deadline has passed', () => {
    const fn = vi.fn();
    atDeadline(performance.now() - 1, fn);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never calls fn once cancelled, and leaves no timer behind (also after re-arming)', () => {
    const fn = vi.fn();
    const cancel = atDeadline(performance.now() + MAX_TIMER_MS + 10, fn);
    vi.advanceTimersByTime(MAX_TIMER_MS); // re-armed for the last 10 ms
    expect(vi.getTimerCount()).toBe(1);
    cancel();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(fn).not.toHaveBeenCalled();
  });

  it('unrefs its timer when asked, so it cannot keep the process alive', () => {
    const armed = vi.spyOn(globalThis, 'setTimeout');
    atDeadline(performance.now() + 100, () => {}, { unref: true });
    const timer = armed.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    atDeadline(performance.now() + 100, () => {});
    expect((armed.mock.results[1]!.value as NodeJS.Timeout).hasRef()).toBe(true);
  });
});

describe('delay and sleep', () => {
  it('resolve after ms, not before', async () => {
    let done = false;
    void sleep(100).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });

  it('treats a negative delay as none', async () => {
    let done = false;
    void delay(-50).promise.then(() => (done = true));
    await flush();
    expect(done).toBe(true);
  });

  it('cancel clears the timer: the promise never resolves', async () => {
    let done = false;
    const timer = delay(100);
    void timer.promise.then(() => (done = true));
    timer.cancel();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(done).toBe(false);
  });
});

describe('settleWithin', () => {
  it('returns as soon as the promise settles, rejected or not, and clears its timer', async () => {
    let rejectIt!: (error: Error) => void;
    const pending = new Promise<void>((_, reject) => (rejectIt = reject));
    let done = false;
    void settleWithin(pending, 5_000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(false);
    rejectIt(new Error('goodbye failed'));
    await flush();
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives up on a promise that never settles after timeoutMs, not before', async () => {
    let done = false;
    void settleWithin(new Promise(() => {}), 2_000).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(1_999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
  });
});
