import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/index.js';
import { migratedFence, type TestFence } from '../support/database.js';

// Bad input gets a typed error before any SQL runs (guarantee 7).

describe('input refused before it reaches SQL', () => {
  let t: TestFence;

  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('isCurrent refuses a token outside the bigint column’s range', async () => {
    for (const token of [2n ** 63n, -(2n ** 63n) - 1n, 2n ** 80n]) {
      await expect(t.fence.isCurrent('k', token)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    // The edges themselves are valid tokens (no lease has them, so: not current).
    expect(await t.fence.isCurrent('k', 2n ** 63n - 1n)).toBe(false);
    expect(await t.fence.isCurrent('k', -(2n ** 63n))).toBe(false);
  });
});
