import { LockTimeoutError } from '../errors.js';
import { atDeadline, delay } from './timers.js';

/**
 * What ends a wait: `waitMs` passing (LockTimeoutError), the caller's signal (its reason) or
 * the PgFence closing. `race` lets any awaited step lose to it.
 * @internal
 */
export class Cancellation {
  readonly #cleanups: (() => void)[] = [];
  /**
   * The rejecters of the races still pending. Not one promise that every race joins: a
   * `Promise.race` against a promise that never settles leaves a reaction on it, holding the
   * race and its value, until the wait ends — one per poll, for days in a `waitMs: Infinity`
   * wait. A race here is forgotten as soon as it settles.
   */
  readonly #pending = new Set<(reason: unknown) => void>();
  #reason: unknown;
  #cancelled = false;

  constructor(key: string, waitMs: number, signals: (AbortSignal | undefined)[]) {
    if (waitMs > 0 && Number.isFinite(waitMs)) {
      const stop = atDeadline(performance.now() + waitMs, () =>
        this.cancel(new LockTimeoutError(key, waitMs)),
      );
      this.#cleanups.push(stop);
    }
    for (const signal of signals) {
      if (!signal) continue;
      if (signal.aborted) {
        this.cancel(signal.reason);
        continue;
      }
      const onAbort = (): void => this.cancel(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  get reason(): unknown {
    return this.#reason;
  }

  cancel(reason: unknown): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#reason = reason;
    for (const reject of this.#pending) reject(reason);
    this.#pending.clear();
  }

  /** `promise`, unless the wait is cancelled first. */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.#cancelled) return Promise.reject(this.#reason);
    return new Promise<T>((resolve, reject) => {
      this.#pending.add(reject);
      promise.then(
        (value) => {
          this.#pending.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          this.#pending.delete(reject);
          reject(error);
        },
      );
    });
  }

  /** Sleeps `ms`, or until `wake` settles, unless the wait is cancelled first. */
  async sleep(ms: number, wake?: Promise<void>): Promise<void> {
    const timer = delay(ms);
    try {
      await this.race(wake ? Promise.race([timer.promise, wake]) : timer.promise);
    } finally {
      timer.cancel();
    }
  }

  dispose(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }
}
