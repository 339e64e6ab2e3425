/**
 * The longest delay `setTimeout` honours: a longer one (a TTL or wait of more than ~24.8 days,
 * both of which the options allow) is silently cut to 1 ms, with a warning each time.
 * @internal
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` once `performance.now()` reaches `deadline`, however far away it is, by re-arming
 * in steps `setTimeout` can express (at once if it has passed). Returns a function that cancels
 * it. With `unref`, the pending timer does not keep the process alive.
 * @internal
 */
export function atDeadline(
  deadline: number,
  fn: () => void,
  options: { unref?: boolean } = {},
): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = deadline - performance.now();
    if (left <= 0) {
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(MAX_TIMER_MS, Math.ceil(left)));
    if (options.unref) timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

/** A promise that resolves after `ms`, and a way to drop it early. @internal */
export function delay(
  ms: number,
  options: { unref?: boolean } = {},
): {
  promise: Promise<void>;
  cancel: () => void;
} {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms));
    if (options.unref) timer.unref();
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Resolves after `ms`. @internal */
export function sleep(ms: number): Promise<void> {
  return delay(ms).promise;
}

/**
 * Waits for `promise` to settle, but no longer than `timeoutMs`; never rejects. For shutdown
 * steps whose outcome does not matter, only that they cannot hold the caller. The pending timer
 * does not keep the process alive.
 * @internal
 */
export async function settleWithin(promise: Promise<unknown>, timeoutMs: number): Promise<void> {
  const timer = delay(timeoutMs, { unref: true });
  try {
    await Promise.race([promise.then(noop, noop), timer.promise]);
  } finally {
    timer.cancel();
  }
}

function noop(): void {}
