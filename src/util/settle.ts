import { atDeadline } from './timers.js';

/** How a wait for a promise ended. @internal */
export type Outcome<T> =
  | { kind: 'done'; value: T }
  | { kind: 'failed'; error: unknown }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/**
 * Waits for `promise`, but no longer than `deadline` (a `performance.now()` time; Infinity for
 * ever) and no longer than `signal` stays unaborted. Never rejects. The promise itself keeps
 * running; a caller that gives up on it is responsible for what it eventually yields.
 * @internal
 */
export function settle<T>(
  promise: Promise<T>,
  deadline: number,
  signal?: AbortSignal,
): Promise<Outcome<T>> {
  if (signal?.aborted) {
    promise.catch(() => {});
    return Promise.resolve({ kind: 'aborted' });
  }
  if (signal === undefined && !Number.isFinite(deadline)) {
    // Nothing can end the wait early (a try of an uncontended lock): no timer, no listener.
    return promise.then(
      (value): Outcome<T> => ({ kind: 'done', value }),
      (error: unknown): Outcome<T> => ({ kind: 'failed', error }),
    );
  }
  return new Promise((resolve) => {
    let stopTimer: (() => void) | undefined;
    const finish = (outcome: Outcome<T>): void => {
      stopTimer?.();
      signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => finish({ kind: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
    if (Number.isFinite(deadline)) {
      // Not a plain setTimeout: a wait of more than ~24.8 days would fire after 1 ms.
      stopTimer = atDeadline(deadline, () => finish({ kind: 'timeout' }));
    }
    promise.then(
      (value) => finish({ kind: 'done', value }),
      (error: unknown) => finish({ kind: 'failed', error }),
    );
  });
}
