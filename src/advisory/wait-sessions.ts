import type { Database } from '../db/database.js';
import { SessionChangedError } from '../errors.js';
import { settle } from '../util/settle.js';
import { AdvisorySession, type SessionEnd } from './advisory-session.js';

/**
 * Most wait sessions one `PgFence` keeps open at once: a waiter blocked in the server holds
 * its connection, and so does the lock it then gets. Past this, waiters poll instead.
 */
export const MAX_WAIT_SESSIONS = 8;
/** Idle wait sessions kept for the next waiter; the rest are closed. */
const MAX_IDLE = 2;

/**
 * Dedicated sessions for callers who wait for a key in the server (`pg_advisory_lock`, woken in
 * FIFO order at the release, no polling) rather than on the shared, multiplexed sessions: a
 * statement blocked there would hold up every other caller's try-locks and unlocks. Each one
 * serves one waiter, and then the lock it got, until that is released.
 * @internal
 */
export class WaitSessions {
  readonly #db: Database;
  readonly #livenessMs: number;
  readonly #onEnd: (session: AdvisorySession, end: SessionEnd) => void;
  readonly #onError: (error: unknown) => void;
  readonly #idle: AdvisorySession[] = [];
  readonly #all = new Set<AdvisorySession>();
  #opening = 0;
  #closed = false;

  constructor(
    db: Database,
    livenessMs: number,
    onEnd: (session: AdvisorySession, end: SessionEnd) => void,
    onError: (error: unknown) => void,
  ) {
    this.#db = db;
    this.#livenessMs = livenessMs;
    this.#onEnd = onEnd;
    this.#onError = onError;
  }

  /** A session for one blocking wait, or null when `MAX_WAIT_SESSIONS` are in use. */
  async checkout(): Promise<AdvisorySession | null> {
    for (let s = this.#idle.pop(); s; s = this.#idle.pop()) if (s.alive) return s;
    if (this.#all.size + this.#opening >= MAX_WAIT_SESSIONS) return null;
    this.#opening += 1;
    try {
      const session = await AdvisorySession.open(this.#db, {
        livenessMs: this.#livenessMs,
        onEnd: (s, end) => {
          this.#all.delete(s);
          const i = this.#idle.indexOf(s);
          if (i >= 0) this.#idle.splice(i, 1);
          this.#onEnd(s, end);
        },
        onError: this.#onError,
      });
      if (this.#closed) {
        await session.close();
        return null;
      }
      this.#all.add(session);
      return session;
    } finally {
      this.#opening -= 1;
    }
  }

  /**
   * `checkout()` for a wait that ends at `deadline` or when `signal` aborts: the session,
   * 'timeout', or null when none can be had (all in use, or opening one failed). Rejects with
   * the signal's reason, or with the `SessionChangedError` of a new session whose backend is
   * not its own (a pooler). A session that opens after the wait gave up on it comes back here
   * at once: otherwise it would stay open, counted against `MAX_WAIT_SESSIONS`, serving nobody.
   */
  async checkoutWithin(
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<AdvisorySession | 'timeout' | null> {
    const pending = this.checkout();
    const outcome = await settle(pending, deadline, signal);
    if (outcome.kind === 'done') return outcome.value;
    if (outcome.kind === 'timeout' || outcome.kind === 'aborted') {
      void pending.then((late) => late && this.checkin(late)).catch(() => {});
    }
    if (outcome.kind === 'aborted') throw signal!.reason;
    if (outcome.kind === 'timeout') return 'timeout';
    if (outcome.error instanceof SessionChangedError) throw outcome.error;
    return null;
  }

  /** Every open wait session. */
  sessions(): AdvisorySession[] {
    return [...this.#all];
  }

  /** Whether `session` is one of these (not a shared session). */
  owns(session: AdvisorySession): boolean {
    return this.#all.has(session);
  }

  /** Takes back a session that no longer holds or waits for anything. */
  checkin(session: AdvisorySession, reusable = true): void {
    if (!session.alive || !this.#all.has(session) || session.held.size > 0) return;
    if (reusable && !this.#closed && this.#idle.length < MAX_IDLE) this.#idle.push(session);
    // In the background: close() never rejects (it waits for the goodbye a bounded time).
    else void session.close();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((s) => s.close()));
  }
}
