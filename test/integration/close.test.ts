import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type PgFence } from '../../src/index.js';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { sleep } from '../support/wait.js';

// Calls made just before close() must settle (resolve, or reject with a clear error), never
// hang: PgFence ends the pool it owns, and a pool that is ended drops the requests still
// waiting for a connection without answering them.

/** 'resolved', the rejection's name, or 'pending' if it had not settled after `ms`. */
async function outcomeWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    promise.then(
      () => 'resolved',
      (error: unknown) => (error instanceof Error ? error.name : String(error)),
    ),
    sleep(ms).then(() => 'pending'),
  ]);
}

describe('calls in flight when close() is called', () => {
  let t: TestFence;

  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  /** A PgFence that owns its pool, with one idle connection in it. */
  const warmFence = async (): Promise<PgFence> => {
    const fence = createPgFence({ connectionString: testUrl(), schema: t.schema });
    expect(await fence.isCurrent('warm-up', 1n)).toBe(false);
    return fence;
  };

  it('claim, isCurrent, inspect and reap settle', async () => {
    const calls: [string, (fence: PgFence) => Promise<unknown>][] = [
      ['claim', (f) => f.claim({ keys: ['close-claim'], limit: 1 })],
      ['isCurrent', (f) => f.isCurrent('close-current', 1n)],
      ['inspect', (f) => f.inspect()],
      ['reap', (f) => f.reap()],
    ];
    for (const [name, call] of calls) {
      const fence = await warmFence();
      const inFlight = call(fence);
      const closing = fence.close();
      expect([name, await outcomeWithin(inFlight, 5_000)]).not.toEqual([name, 'pending']);
      expect(await outcomeWithin(closing, 5_000)).toBe('resolved');
    }
  });
});
