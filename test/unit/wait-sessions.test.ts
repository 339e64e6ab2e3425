import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { SessionChangedError } from '../../src/errors.js';
import { AdvisorySession } from '../../src/advisory/advisory-session.js';
import { WaitSessions } from '../../src/advisory/wait-sessions.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** A stand-in for an open session: alive, holding nothing. */
function fakeSession(): AdvisorySession {
  return {
    alive: true,
    held: new Map(),
    close: vi.fn(async () => {}),
  } as unknown as AdvisorySession;
}

/** AdvisorySession.open answering with `session` once `open()` of the returned pair is called. */
function slowOpen(): { opened: AdvisorySession; open: () => void; calls: () => number } {
  const opened = fakeSession();
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => (finish = resolve));
  const spy = vi.spyOn(AdvisorySession, 'open').mockImplementation(async () => {
    await gate;
    return opened;
  });
  return { opened, open: finish, calls: () => spy.mock.calls.length };
}

const waits = () =>
  new WaitSessions(
    {} as Database,
    1_000,
    () => {},
    () => {},
  );

describe('WaitSessions.checkoutWithin', () => {
  it('a session that opens after the wait timed out goes back to be reused, not kept out of use', async () => {
    vi.useFakeTimers();
    const { opened, open, calls } = slowOpen();
    const sessions = waits();
    const first = sessions.checkoutWithin(performance.now() + 100, undefined);
    await vi.advanceTimersByTimeAsync(100);
    expect(await first).toBe('timeout');
    open();
    await vi.advanceTimersByTimeAsync(0);
    // The next waiter gets the late session from the idle ones: nothing new is opened.
    expect(await sessions.checkoutWithin(Infinity, undefined)).toBe(opened);
    expect(calls()).toBe(1);
  });

  it('so does one that opens after the signal aborted; the wait rejects with its reason', async () => {
    const { opened, open, calls } = slowOpen();
    const sessions = waits();
    const controller = new AbortController();
    const first = sessions.checkoutWithin(Infinity, controller.signal);
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(first).rejects.toBe(reason);
    open();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(await sessions.checkoutWithin(Infinity, undefined)).toBe(opened);
    expect(calls()).toBe(1);
  });

  it('rejects with a pooler sign, and answers null for any other failure to open', async () => {
    const changed = new SessionChangedError('shared backend');
    const spy = vi.spyOn(AdvisorySession, 'open').mockRejectedValueOnce(changed);
    const sessions = waits();
    await expect(sessions.checkoutWithin(Infinity, undefined)).rejects.toBe(changed);
    spy.mockRejectedValueOnce(new Error('connection refused'));
    expect(await sessions.checkoutWithin(Infinity, undefined)).toBeNull();
  });
});
