import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Coalescer } from '../../src/util/coalescer.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A `run` whose batches stay open until the test answers them. */
function manualRun() {
  const batches: {
    requests: number[];
    answer: (results: PromiseSettledResult<string>[]) => void;
    fail: (error: unknown) => void;
  }[] = [];
  const run = (requests: number[]) =>
    new Promise<PromiseSettledResult<string>[]>((answer, fail) => {
      batches.push({ requests, answer, fail });
    });
  return { batches, run };
}

const ok = (value: string): PromiseSettledResult<string> => ({ status: 'fulfilled', value });

describe('Coalescer', () => {
  it('hands requests submitted in one turn to run together, in order, after that turn', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 100, maxInFlight: 1 });
    const answers = [1, 2, 3].map((n) => coalescer.submit(n));
    expect(batches).toHaveLength(0); // not before the turn ends
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1, 2, 3]]);
    batches[0]!.answer([ok('one'), ok('two'), ok('three')]);
    await expect(Promise.all(answers)).resolves.toEqual(['one', 'two', 'three']);
  });

  it('takes in callers that reach submit a few promise hops later, in the same turn', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 100, maxInFlight: 1 });
    const first = coalescer.submit(1);
    // Another caller woken by the same event, after some awaits of its own.
    const second = (async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
      return coalescer.submit(2);
    })();
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1, 2]]);
    batches[0]!.answer([ok('one'), ok('two')]);
    await expect(Promise.all([first, second])).resolves.toEqual(['one', 'two']);
  });

  it("keeps one request's failure out of the others' results", async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 100, maxInFlight: 1 });
    const a = coalescer.submit(1);
    const b = coalescer.submit(2);
    await vi.advanceTimersByTimeAsync(0);
    const refused = new Error('refused');
    batches[0]!.answer([{ status: 'rejected', reason: refused }, ok('two')]);
    await expect(a).rejects.toBe(refused);
    await expect(b).resolves.toBe('two');
  });

  it('rejects every request of a batch whose statement fails, and of no other batch', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 2, maxInFlight: 2 });
    const answers = [1, 2, 3].map((n) => coalescer.submit(n));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1, 2], [3]]);
    const down = new Error('connection lost');
    batches[0]!.fail(down);
    batches[1]!.answer([ok('three')]);
    await expect(answers[0]).rejects.toBe(down);
    await expect(answers[1]).rejects.toBe(down);
    await expect(answers[2]).resolves.toBe('three');
  });

  it('rejects a request that run left without an answer', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 100, maxInFlight: 1 });
    const a = coalescer.submit(1);
    const b = coalescer.submit(2);
    await vi.advanceTimersByTimeAsync(0);
    batches[0]!.answer([ok('one')]);
    await expect(a).resolves.toBe('one');
    await expect(b).rejects.toThrow('got no answer');
  });

  it('runs at most maxInFlight batches at once; the rest wait and then go together', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 1, maxInFlight: 2 });
    const answers = [1, 2, 3, 4].map((n) => coalescer.submit(n));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1], [2]]);
    batches[1]!.answer([ok('two')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1], [2], [3]]);
    batches[0]!.answer([ok('one')]);
    batches[2]!.answer([ok('three')]);
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1], [2], [3], [4]]);
    batches[3]!.answer([ok('four')]);
    await expect(Promise.all(answers)).resolves.toEqual(['one', 'two', 'three', 'four']);
  });

  it('batches what arrives while the only batch is in flight into the next one', async () => {
    const { batches, run } = manualRun();
    const coalescer = new Coalescer(run, { maxBatch: 100, maxInFlight: 1 });
    const first = coalescer.submit(1);
    await vi.advanceTimersByTimeAsync(0);
    const later = [2, 3].map((n) => coalescer.submit(n));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toHaveLength(1);
    batches[0]!.answer([ok('one')]);
    await first;
    await vi.advanceTimersByTimeAsync(0);
    expect(batches.map((b) => b.requests)).toEqual([[1], [2, 3]]);
    batches[1]!.answer([ok('two'), ok('three')]);
    await expect(Promise.all(later)).resolves.toEqual(['two', 'three']);
  });
});
