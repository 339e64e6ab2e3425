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
 *
 * A waiting exclusive `lockAll` is in no queue (it holds nothing while it waits), so it holds
 * its keys back instead (`holdBack`): shared callers that come after it queue, and the set
 * goes before them once the key's holders are gone, as if it had queued first.
 * @internal
 */
export class LocalLocks {
  readonly #states = new Map<bigint, State>();
  /** Per lock id, how many waiting exclusive sets hold it back from new shared callers. */
  readonly #heldBack = new Map<bigint, number>();

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

  /** Keeps new shared callers of `id` waiting until `letGo(id)` (a waiting exclusive set). */
  holdBack(id: bigint): void {
    this.#heldBack.set(id, (this.#heldBack.get(id) ?? 0) + 1);
  }

  /** Ends one `holdBack(id)`: the shared callers it kept waiting may go, if nothing else stops them. */
  letGo(id: bigint): void {
    const n = (this.#heldBack.get(id) ?? 0) - 1;
    if (n > 0) {
      this.#heldBack.set(id, n);
      return;
    }
    this.#heldBack.delete(id);
    const state = this.#states.get(id);
    if (!state) return;
    this.#pump(id, state);
    for (const wake of state.watchers.splice(0)) wake();
  }

  /** Waits for the slot; rejects when `cancel` fires (and leaves the queue). */
  async enter(id: bigint, mode: LockMode, cancel: Cancellation): Promise<LocalSlot> {
    const free = this.tryEnter(id, mode);
    if (free) return free;
    let state = this.#states.get(id);
    if (!state) {
      // Nobody holds it, but a waiting set holds it back: queue behind the set.
      state = { mode, holders: 0, queue: [], watchers: [] };
      this.#states.set(id, state);
    }
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

  /**
   * Resolves at the next release of `id` in this process, or when a set lets it go (at once if
   * nobody holds it and no set holds it back).
   */
  released(id: bigint): Promise<void> {
    let state = this.#states.get(id);
    if (!state) {
      if (!this.#heldBack.has(id)) return Promise.resolve();
      // Nobody holds it, but a waiting set holds it back: woken when the set lets it go.
      state = { mode: 'shared', holders: 0, queue: [], watchers: [] };
      this.#states.set(id, state);
    }
    const watched = state;
    return new Promise((resolve) => watched.watchers.push(resolve));
  }

  #admits(id: bigint, mode: LockMode): boolean {
    const state = this.#states.get(id);
    if (mode === 'shared') {
      if (this.#heldBack.has(id)) return false;
      return !state || (state.mode === 'shared' && state.queue.length === 0);
    }
    // Exclusive: nobody in, and nobody waiting but shared callers a set holds back (who came
    // after that set: an exclusive caller does not wait for them).
    return (
      !state ||
      (state.holders === 0 &&
        this.#heldBack.has(id) &&
        state.queue.every((entry) => entry.mode === 'shared'))
    );
  }

  #admit(id: bigint, mode: LockMode): LocalSlot {
    const state = this.#states.get(id);
    if (state) {
      if (state.holders === 0) state.mode = mode;
      state.holders += 1;
    } else this.#states.set(id, { mode, holders: 1, queue: [], watchers: [] });
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
      if (head.mode === 'shared' && this.#heldBack.has(id)) {
        // Held back: an exclusive caller behind them goes first when the key is free, as the
        // set that holds them back would (otherwise both would wait for each other).
        const next = state.queue.findIndex((entry) => entry.mode === 'exclusive');
        if (state.holders === 0 && next > 0) {
          const [exclusive] = state.queue.splice(next, 1);
          state.mode = 'exclusive';
          state.holders = 1;
          exclusive!.grant();
        }
        break;
      }
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
