import { AlreadyReleasedError, LockLostError } from '../errors.js';
import type { LockMode } from '../options.js';
import type { AdvisoryLock } from '../types.js';

/**
 * The handle of one session advisory lock. It is `held` until `release()` or until its session
 * dies (`lost`: the signal aborts with a `LockLostError`); a released handle stays released.
 * @internal
 */
export class SessionLock implements AdvisoryLock {
  readonly key: string | bigint;
  readonly id: bigint;
  readonly mode: LockMode;
  readonly #controller = new AbortController();
  readonly #unlock: () => Promise<boolean>;
  #state: 'held' | 'lost' | 'released' = 'held';

  /** `unlock` gives the lock back on its session; it runs at most once, and only while held. */
  constructor(key: string | bigint, id: bigint, mode: LockMode, unlock: () => Promise<boolean>) {
    this.key = key;
    this.id = id;
    this.mode = mode;
    this.#unlock = unlock;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get held(): boolean {
    return this.#state === 'held';
  }

  /** Marks the lock lost and aborts its signal; no-op unless held. */
  lose(cause: unknown, message: string): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    this.#controller.abort(new LockLostError(String(this.key), message, { cause }));
  }

  async release(): Promise<boolean> {
    if (this.#state === 'released') throw new AlreadyReleasedError(String(this.key));
    const wasHeld = this.#state === 'held';
    this.#state = 'released';
    return wasHeld ? this.#unlock() : false;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state !== 'released') await this.release();
  }
}
