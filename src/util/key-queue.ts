import type { Cancellation } from './cancellation.js';

/** The right to contend for a key from this process; `release` passes it on to the next caller. @internal */
export interface KeySlot {
  release(): void;
}

interface Entry {
  granted: boolean;
  grant: () => void;
}

/**
 * Same-process callers of one key queue here, first come first served: only the head of a
 * key's queue asks the database, and it keeps the slot for as long as it holds the lease.
 * That gives mutual exclusion and arrival order inside the process without extra round trips.
 * @internal
 */
export class KeyQueue {
  readonly #queues = new Map<string, Entry[]>();

  /** The slot if nobody in this process holds or is acquiring `key`; otherwise null. */
  tryEnter(key: string): KeySlot | null {
    if (this.#queues.has(key)) return null;
    const entry: Entry = { granted: true, grant: () => {} };
    this.#queues.set(key, [entry]);
    return this.#slot(key, entry);
  }

  /** Waits for the slot of `key`; rejects when `cancel` fires (and leaves the queue). */
  async enter(key: string, cancel: Cancellation): Promise<KeySlot> {
    const existing = this.#queues.get(key);
    if (!existing) return this.tryEnter(key) as KeySlot;
    let entry!: Entry;
    const granted = new Promise<void>((resolve) => {
      entry = { granted: false, grant: resolve };
    });
    existing.push(entry);
    try {
      await cancel.race(granted);
      return this.#slot(key, entry);
    } catch (error) {
      if (entry.granted) this.#leave(key, entry);
      else this.#remove(key, entry);
      throw error;
    }
  }

  /** How many callers hold or wait for `key` in this process. */
  size(key: string): number {
    return this.#queues.get(key)?.length ?? 0;
  }

  #slot(key: string, entry: Entry): KeySlot {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#leave(key, entry);
      },
    };
  }

  #leave(key: string, entry: Entry): void {
    const queue = this.#queues.get(key);
    if (!queue || queue[0] !== entry) return;
    queue.shift();
    const next = queue[0];
    if (!next) {
      this.#queues.delete(key);
      return;
    }
    next.granted = true;
    next.grant();
  }

  #remove(key: string, entry: Entry): void {
    const queue = this.#queues.get(key);
    if (!queue) return;
    const index = queue.indexOf(entry);
    if (index > 0) queue.splice(index, 1);
  }
}
