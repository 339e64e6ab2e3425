// Same-process admission (src/advisory/local-locks.ts): first come first served, shared callers
// together, and keys a waiting exclusive set holds back from later shared callers.
import { describe, expect, it } from 'vitest';
import { LocalLocks } from '../../src/advisory/local-locks.js';
import { Cancellation } from '../../src/util/cancellation.js';

const wait = (ms = 10_000) => new Cancellation('k', ms, []);
/** Whether `promise` has settled after the microtasks queued so far have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('LocalLocks', () => {
  it('admits shared callers together, and one exclusive caller alone, in arrival order', async () => {
    const local = new LocalLocks();
    const a = local.tryEnter(1n, 'shared')!;
    const b = local.tryEnter(1n, 'shared')!;
    expect(local.tryEnter(1n, 'exclusive')).toBeNull();
    const writer = local.enter(1n, 'exclusive', wait());
    // A shared caller after a waiting exclusive one waits behind it.
    expect(local.tryEnter(1n, 'shared')).toBeNull();
    a.release();
    expect(await settled(writer)).toBe(false);
    b.release();
    expect(await settled(writer)).toBe(true);
    (await writer).release();
    expect(local.tryEnter(1n, 'shared')).not.toBeNull();
  });

  it('holds a key back: later shared callers wait, the set goes first, then they go', async () => {
    const local = new LocalLocks();
    const early = local.tryEnter(1n, 'shared')!;
    local.holdBack(1n);
    expect(local.tryEnter(1n, 'shared')).toBeNull();
    const late = local.enter(1n, 'shared', wait());
    expect(await settled(late)).toBe(false);
    // The set cannot go while a holder from before is in.
    expect(local.tryEnterAll([1n, 2n], 'exclusive')).toBeNull();
    early.release();
    expect(await settled(late)).toBe(false); // still held back
    // Only held-back shared callers wait: the set goes before them.
    const set = local.tryEnterAll([1n, 2n], 'exclusive')!;
    expect(set).not.toBeNull();
    local.letGo(1n);
    expect(await settled(late)).toBe(false); // behind the set's slot now
    for (const slot of set) slot.release();
    expect(await settled(late)).toBe(true);
    (await late).release();
  });

  it('a held-back key with nobody in lets an exclusive caller in, not a shared one', async () => {
    const local = new LocalLocks();
    local.holdBack(7n);
    expect(local.tryEnter(7n, 'shared')).toBeNull();
    const exclusive = local.tryEnter(7n, 'exclusive')!;
    expect(exclusive).not.toBeNull();
    exclusive.release();
    local.letGo(7n);
    expect(local.tryEnter(7n, 'shared')).not.toBeNull();
  });

  it('an exclusive caller queued behind held-back shared callers gets the key once it is free', async () => {
    const local = new LocalLocks();
    const holder = local.tryEnter(3n, 'shared')!;
    const writer = local.enter(3n, 'exclusive', wait());
    local.holdBack(3n);
    const reader = local.enter(3n, 'shared', wait());
    holder.release();
    // The writer was first anyway; the held-back reader waits.
    expect(await settled(writer)).toBe(true);
    expect(await settled(reader)).toBe(false);
    (await writer).release();
    expect(await settled(reader)).toBe(false);
    local.letGo(3n);
    expect(await settled(reader)).toBe(true);
    (await reader).release();
  });

  it('a shared set that meets a held-back key waits for it to be let go (no busy loop)', async () => {
    const local = new LocalLocks();
    local.holdBack(9n);
    expect(local.tryEnterAll([8n, 9n], 'shared')).toBeNull();
    expect(local.blocker([8n, 9n], 'shared')).toBe(9n);
    const released = local.released(9n);
    expect(await settled(released)).toBe(false);
    local.letGo(9n);
    expect(await settled(released)).toBe(true);
    const slots = local.tryEnterAll([8n, 9n], 'shared')!;
    expect(slots).not.toBeNull();
    for (const slot of slots) slot.release();
  });

  it('a held-back shared caller that gives up leaves the queue, and letGo counts nested holds', async () => {
    const local = new LocalLocks();
    local.holdBack(5n);
    local.holdBack(5n);
    const reader = local.enter(5n, 'shared', wait(20));
    await expect(reader).rejects.toThrow();
    local.letGo(5n);
    expect(local.tryEnter(5n, 'shared')).toBeNull(); // one hold is left
    local.letGo(5n);
    const slot = local.tryEnter(5n, 'shared');
    expect(slot).not.toBeNull();
    slot!.release();
    expect(local.tryEnter(5n, 'exclusive')).not.toBeNull();
  });
});
