import { ClosedError } from '../errors.js';
import { atDeadline } from '../lease/long-timer.js';

/** Proof of owning a key's slot; `release()` hands the slot on and is safe to call twice. @internal */
export interface Slot {
  release(): void;
}

interface Waiter {
  grant(slot: Slot): void;
  fail(error: unknown): void;
}

interface KeyQueue {
  waiters: Waiter[];
}

/**
 * In-process exclusion per advisory lock id. PostgreSQL's advisory locks are re-entrant per
 * session, so two callers of one process sharing a session would both "get" a key; pgfence lets
 * one caller per lock id near the server at a time and queues the others here, first come first
 * served. Keyed by lock id (not by key text) so that two keys whose hashes collide queue too.
 * @internal
 */
export class KeySlots {
  readonly #queues = new Map<bigint, KeyQueue>();
  #closed = false;

  /** The slot if it is free now, else null. */
  tryTake(id: bigint): Slot | null {
    if (this.#closed) throw new ClosedError();
    if (this.#queues.has(id)) return null;
    this.#queues.set(id, { waiters: [] });
    return this.#slot(id);
  }

  /**
   * Waits for the slot. Rejects with `onTimeout()` at `deadline` (a `performance.now()` time),
   * with the signal's reason on abort, or with `ClosedError` when closed.
   */
  async take(
    id: bigint,
    deadline: number,
    signal: AbortSignal | undefined,
    onTimeout: () => Error,
  ): Promise<Slot> {
    const free = this.tryTake(id);
    if (free) return free;
    const queue = this.#queues.get(id)!;
    return new Promise<Slot>((resolve, reject) => {
      let stopTimer: (() => void) | undefined;
      const settle = (): void => {
        stopTimer?.();
        signal?.removeEventListener('abort', onAbort);
        const at = queue.waiters.indexOf(waiter);
        if (at >= 0) queue.waiters.splice(at, 1);
      };
      const waiter: Waiter = {
        grant: (slot) => (settle(), resolve(slot)),
        fail: (error) => (settle(), reject(error)),
      };
      const onAbort = (): void => waiter.fail(signal!.reason);
      queue.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(deadline)) {
        // Not a plain setTimeout: a wait of more than ~24.8 days would fire after 1 ms.
        stopTimer = atDeadline(deadline, () => waiter.fail(onTimeout()));
      }
    });
  }

  /** Fails every waiter with `ClosedError`; later calls throw it. */
  close(): void {
    this.#closed = true;
    for (const queue of this.#queues.values()) {
      for (const waiter of [...queue.waiters]) waiter.fail(new ClosedError());
    }
  }

  #slot(id: bigint): Slot {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const queue = this.#queues.get(id);
        const next = queue?.waiters.shift();
        if (next) next.grant(this.#slot(id));
        else this.#queues.delete(id);
      },
    };
  }
}
