// Waiting in tests: plain sleeps, and bounding a promise that is expected to settle quickly.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves to 'timeout' if `promise` has not settled within `ms`: "did not wait" with a wide margin. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long `promise` took to settle (either way), or null if it had not after `limitMs`. */
export async function settledWithin(
  promise: Promise<unknown>,
  limitMs: number,
): Promise<number | null> {
  const started = performance.now();
  const done = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    sleep(limitMs).then(() => false),
  ]);
  return done ? performance.now() - started : null;
}
