import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LockTimeoutError } from '../../src/errors.js';
import { Cancellation } from '../../src/util/cancellation.js';
import { KeyQueue, type KeySlot } from '../../src/util/key-queue.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const forever = () => new Cancellation('k', Infinity, []);

describe('KeyQueue', () => {
  it('gives the slot of a free key at once, and none while someone holds it', () => {
    const queue = new KeyQueue();
    const slot = queue.tryEnter('k');
    expect(slot).not.toBeNull();
    expect(queue.tryEnter('k')).toBeNull();
    expect(queue.tryEnter('other')).not.toBeNull();
    slot!.release();
    expect(queue.size('k')).toBe(0);
    expect(queue.tryEnter('k')).not.toBeNull();
  });

  it('hands the slot on in arrival order, one holder at a time', async () => {
    const queue = new KeyQueue();
    const first = queue.tryEnter('k')!;
    const order: string[] = [];
    const slots = new Map<string, KeySlot>();
    for (const name of ['a', 'b', 'c']) {
      void queue.enter('k', forever()).then((slot) => {
        order.push(name);
        slots.set(name, slot);
      });
    }
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual([]);
    expect(queue.size('k')).toBe(4);
    first.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['a']);
    slots.get('a')!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['a', 'b']);
    slots.get('b')!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(order).toEqual(['a', 'b', 'c']);
    slots.get('c')!.release();
    expect(queue.size('k')).toBe(0);
  });

  it('ignores a second release of one slot: it cannot pass on a slot someone else holds', async () => {
    const queue = new KeyQueue();
    const first = queue.tryEnter('k')!;
    let second: KeySlot | undefined;
    let thirdHas = false;
    void queue.enter('k', forever()).then((slot) => (second = slot));
    void queue.enter('k', forever()).then(() => (thirdHas = true));
    first.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(second).toBeDefined();
    first.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(thirdHas).toBe(false);
    expect(queue.size('k')).toBe(2);
  });

  it('takes a waiter whose wait ends out of the queue, with the reason, behind nobody', async () => {
    const queue = new KeyQueue();
    const holder = queue.tryEnter('k')!;
    const waiting = queue.enter('k', new Cancellation('k', 100, []));
    let nextHas = false;
    void queue.enter('k', forever()).then(() => (nextHas = true));
    const outcome = expect(waiting).rejects.toBeInstanceOf(LockTimeoutError);
    await vi.advanceTimersByTimeAsync(100);
    await outcome;
    expect(queue.size('k')).toBe(2);
    holder.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(nextHas).toBe(true);
  });

  it('passes the slot on when a waiter is cancelled in the same instant it is granted', async () => {
    const queue = new KeyQueue();
    const holder = queue.tryEnter('k')!;
    const cancel = forever();
    const waiting = queue.enter('k', cancel);
    let nextHas = false;
    void queue.enter('k', forever()).then(() => (nextHas = true));
    await vi.advanceTimersByTimeAsync(0);
    // The cancellation settles first, then the grant: the waiter rejects though it was granted,
    // and must not keep the slot nobody will release.
    cancel.cancel(new Error('gone'));
    holder.release();
    await expect(waiting).rejects.toThrow('gone');
    await vi.advanceTimersByTimeAsync(0);
    expect(nextHas).toBe(true);
    expect(queue.size('k')).toBe(1);
  });
});
