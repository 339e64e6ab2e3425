import type { ChildProcess } from 'node:child_process';
import type { WorkerMessage } from './messages.js';
import type { DemoPlan } from './plan.js';
import type { DemoEvent, DemoState, WorkerState } from './state.js';

/** How many times the pause is tried when the paused worker happened to have nothing to write. */
const PAUSE_TRIES = 3;

/**
 * The demo's two faults. Worker 2 is paused with SIGSTOP (a stand-in for a long GC pause or a
 * frozen VM) while it works on something it holds, for longer than the TTL, then resumed with
 * SIGCONT: it carries on, its write is refused by the fence, and its lease has been taken over
 * with a larger token. Worker 3 is killed with SIGKILL just after claiming jobs: nothing releases
 * them, and once their leases expire other workers claim them again.
 */
export class FaultScript {
  /** The worker that was paused, if the pause happened. */
  pausedWorker: number | null = null;
  /** The worker that was killed, if the kill happened. */
  killedWorker: number | null = null;

  readonly #plan: DemoPlan;
  readonly #state: DemoState;
  readonly #children: Map<number, ChildProcess>;
  readonly #emit: (event: Omit<DemoEvent, 'at'>) => void;
  readonly #faulted = new Set<number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #pauseVictim = 2;
  readonly #killVictim = 3;
  #killScheduled = false;
  #pauseTries = 0;
  #pausing = false;
  #refusedSeen = false;
  #nextPauseAt: number;

  constructor(
    plan: DemoPlan,
    state: DemoState,
    children: Map<number, ChildProcess>,
    emit: (event: Omit<DemoEvent, 'at'>) => void,
  ) {
    this.#plan = plan;
    this.#state = state;
    this.#children = children;
    this.#emit = emit;
    this.#nextPauseAt = plan.pauseAtMs;
  }

  /** Whether a worker was paused or killed (so its leases may be taken over). */
  isFaulted(id: number): boolean {
    return this.#faulted.has(id);
  }

  onMessage(w: WorkerState, m: WorkerMessage): void {
    const elapsed = performance.now() - this.#state.startedAt;
    if (w.id === this.#pauseVictim) {
      if (m.t === 'write' && !m.ok) this.#refusedSeen = true;
      if (
        m.t === 'work' &&
        !this.#pausing &&
        !this.#refusedSeen &&
        this.#pauseTries < PAUSE_TRIES &&
        elapsed >= this.#nextPauseAt &&
        w.status !== 'killed'
      ) {
        this.#pause(w, m.key, m.token);
      }
    }
    if (
      w.id === this.#killVictim &&
      m.t === 'acquire' &&
      m.key.startsWith('job:') &&
      !this.#killScheduled &&
      elapsed >= this.#plan.killAtMs &&
      w.status !== 'paused'
    ) {
      this.#kill(w);
    }
  }

  /** Cancels what is scheduled and resumes a paused worker, so nothing is left stopped. */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    if (this.#pausing && this.pausedWorker !== null) {
      this.#children.get(this.pausedWorker)?.kill('SIGCONT');
    }
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  #pause(w: WorkerState, key: string, token: string): void {
    const child = this.#children.get(w.id);
    if (!child) return;
    child.kill('SIGSTOP');
    this.#pausing = true;
    this.#pauseTries += 1;
    this.pausedWorker = w.id;
    this.#faulted.add(w.id);
    w.status = 'paused';
    const ttl = this.#plan.ttlMs / 1000;
    this.#emit({
      type: 'pause',
      worker: w.id,
      key,
      token,
      text: `paused (SIGSTOP) in the middle of ${key} #${token}, like a long GC pause; its leases run out after ${ttl}s and it cannot know`,
    });
    this.#later(this.#plan.pauseForMs, () => {
      child.kill('SIGCONT');
      this.#pausing = false;
      if (w.status === 'paused') w.status = 'working';
      this.#emit({
        type: 'resume',
        worker: w.id,
        text: `resumed (SIGCONT) after ${(this.#plan.pauseForMs / 1000).toFixed(1)}s; it carries on as if it still held its leases`,
      });
      // Paused between two jobs rather than inside one, it had nothing stale to write: try again.
      this.#later(3_000, () => {
        if (!this.#refusedSeen) this.#nextPauseAt = performance.now() - this.#state.startedAt;
      });
    });
  }

  #kill(w: WorkerState): void {
    // A moment later, so that the whole batch it just claimed is on screen as held.
    this.#killScheduled = true;
    this.#later(20, () => {
      const child = this.#children.get(w.id);
      if (!child || w.status === 'paused') {
        this.#killScheduled = false;
        return;
      }
      child.kill('SIGKILL');
      this.killedWorker = w.id;
      this.#faulted.add(w.id);
      w.status = 'killed';
      const jobs = [...w.holds]
        .filter(([key, token]) => token !== null && key.startsWith('job:'))
        .map(([key, token]) => `${key} #${token}`);
      this.#emit({
        type: 'kill',
        worker: w.id,
        text: `killed (SIGKILL) holding ${jobs.join(', ') || 'its claim'}; nothing releases them: after ${this.#plan.ttlMs / 1000}s they expire and other workers claim them again`,
      });
    });
  }
}
