import type { Cancellation } from '../util/cancellation.js';
import type { LockMode } from '../options.js';

/** The right to go to the server for a lock id from this process; `release` passes it on. @internal */
export interface LocalSlot {
  release(): void;
}

interface Entry {
  mode: LockMode;
  grant: () => void;
}

interface State {
  /** The mode of the callers in `holders` (all shared, or one exclusive). */
  mode: LockMode;
  holders: number;
  /** Waiting callers, first come first served. */
  queue: Entry[];
  /** Woken at every release (callers of `lockAll` waiting for a key to come free). */
  watchers: (() => void)[];
}

/**
 * Same-process callers of one lock id, shared or exclusive. PostgreSQL's advisory locks are
 * re-entrant per session, so two callers of one process sharing a session would both "get" a
 * key: only callers admitted here go near the server. Exclusive callers are admitted one at a
 * time; shared ones together. Admission is first come first served, so a shared caller that
 * arrives after a waiting exclusive one waits behind it (no writer starvation). Keyed by lock
 * id (not key text) so that two keys whose hashes collide queue too.
 * @internal
 */
export class LocalLocks {
  readonly #states = new Map<bigint, State>();

  /** The slot if it can be had at once, with nobody waiting ahead; otherwise null. */
  tryEnter(id: bigint, mode: LockMode): LocalSlot | null {
    if (!this.#admits(id, mode)) return null;
    return this.#admit(id, mode);
  }

  /** Every slot at once, or none (and null) if any of them cannot be had now. */
  tryEnterAll(ids: readonly bigint[], mode: LockMode): LocalSlot[] | null {
    if (!ids.every((id) => this.#admits(id, mode))) return null;
    return ids.map((id) => this.#admit(id, mode));
  }

  /** The first of `ids` that `tryEnterAll` cannot have now, if any. */
  blocker(ids: readonly bigint[], mode: LockMode): bigint | undefined {
    return ids.find((id) => !this.#admits(id, mode));
  }

  /** Waits for the slot; rejects when `cancel` fires (and leaves the queue). */
  async enter(id: bigint, mode: LockMode, cancel: Cancellation): Promise<LocalSlot> {
    const free = this.tryEnter(id, mode);
    if (free) return free;
    const state = this.#states.get(id)!;
    let granted = false;
    let entry!: Entry;
    const admitted = new Promise<void>((resolve) => {
      entry = {
        mode,
        grant: () => {
          granted = true;
          resolve();
        },
      };
    });
    state.queue.push(entry);
    try {
      await cancel.race(admitted);
    } catch (error) {
      if (granted) this.#leave(id);
      else {
        state.queue.splice(state.queue.indexOf(entry), 1);
        // A waiting exclusive caller that gives up may let shared ones behind it in.
        this.#pump(id, state);
      }
      throw error;
    }
    return this.#slot(id);
  }

  /** Resolves at the next release of `id` in this process (at once if nobody holds it). */
  released(id: bigint): Promise<void> {
    const state = this.#states.get(id);
    if (!state) return Promise.resolve();
    return new Promise((resolve) => state.watchers.push(resolve));
  }

  #admits(id: bigint, mode: LockMode): boolean {
    const state = this.#states.get(id);
    return !state || (mode === 'shared' && state.mode === 'shared' && state.queue.length === 0);
  }

  #admit(id: bigint, mode: LockMode): LocalSlot {
    const state = this.#states.get(id);
    if (state) state.holders += 1;
    else this.#states.set(id, { mode, holders: 1, queue: [], watchers: [] });
    return this.#slot(id);
  }

  #slot(id: bigint): LocalSlot {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#leave(id);
      },
    };
  }

  #leave(id: bigint): void {
    const state = this.#states.get(id);
    if (!state) return;
    state.holders -= 1;
    this.#pump(id, state);
    for (const wake of state.watchers.splice(0)) wake();
  }

  /** Admits the callers at the head of the queue that may go now. */
  #pump(id: bigint, state: State): void {
    while (state.queue.length > 0) {
      const head = state.queue[0]!;
      if (state.holders === 0) state.mode = head.mode;
      else if (!(state.mode === 'shared' && head.mode === 'shared')) break;
      state.queue.shift();
      state.holders += 1;
      head.grant();
      if (head.mode === 'exclusive') break;
    }
    if (state.holders === 0 && state.queue.length === 0) {
      this.#states.delete(id);
      for (const wake of state.watchers.splice(0)) wake();
    }
  }
}
