import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Database } from '../db/database.js';
import { explainDbError, isTransient } from '../db/errors.js';
import {
  ClosedError,
  InvalidArgumentError,
  LockTimeoutError,
  SessionChangedError,
  UnavailableError,
} from '../errors.js';
import { advisoryKeyId, validateAdvisoryKey } from '../keys.js';
import { Cancellation } from '../lease/cancellation.js';
import { KeyQueue, type KeySlot } from '../lease/key-queue.js';
import { validateSignal, validateWait, type ResolvedOptions } from '../options.js';
import type { AdvisoryLock, LockOptions } from '../types.js';
import { AdvisorySession, type SessionEnd } from './advisory-session.js';
import { SessionLock } from './session-lock.js';
import { settle } from './settle.js';

/**
 * A waiting caller polls with `pg_try_advisory_lock`, sleeping a jittered, doubling delay
 * between tries. A blocking `pg_advisory_lock` would hold up every other statement queued on
 * the shared session; polling keeps the session free, and callers of this process waiting for
 * the same key do not poll at all (they queue in a `KeyQueue` and are handed the key in turn).
 */
const FIRST_RETRY_MS = 4;
const MAX_RETRY_MS = 50;
/** The last failure of a wait's attempts, and whether the wait's last attempt was one. */
interface Failures {
  last: unknown;
  lastAttemptFailed: boolean;
  /** Some try got an answer from the database (granted or busy). */
  answered?: boolean;
}

/**
 * A wait that ends with no answer from the database is reported as `UnavailableError` only if
 * the database had at least this long to answer; less, and the wait was spent in this
 * process's own queue (contention), not on the server.
 */
const UNAVAILABLE_EVIDENCE_MS = 50;

/** How long close() waits for a session that is still connecting. */
const CLOSE_WAIT_FOR_OPENING_MS = 2_000;

/**
 * Session advisory locks multiplexed over `advisorySessions` dedicated connections: a lock id
 * always goes to the same session slot (id mod n). Sessions open on first use; one that dies
 * takes its locks with it (their signals abort with `LockLostError`) and the next caller gets a
 * fresh session — a lost lock is never re-taken behind its holder's back.
 * @internal
 */
export class SessionLockManager {
  readonly #db: Database;
  readonly #options: ResolvedOptions;
  /**
   * In-process exclusion per lock id. PostgreSQL's advisory locks are re-entrant per session, so
   * two callers of one process sharing a session would both "get" a key: one caller per lock id
   * goes near the server at a time, the others wait here, first come first served. Keyed by lock
   * id (not by key text) so that two keys whose hashes collide queue too.
   */
  readonly #slots = new KeyQueue();
  /** Aborted with `ClosedError` by close(): fails the callers waiting for a slot. */
  readonly #closing = new AbortController();
  readonly #opening: (Promise<AdvisorySession> | undefined)[];
  readonly #live: (AdvisorySession | undefined)[];

  constructor(db: Database, options: ResolvedOptions) {
    this.#db = db;
    this.#options = options;
    // Every caller waiting for a slot listens on it.
    setMaxListeners(0, this.#closing.signal);
    this.#opening = new Array<undefined>(options.advisorySessions).fill(undefined);
    this.#live = new Array<undefined>(options.advisorySessions).fill(undefined);
  }

  /** Waits up to `waitMs` for the key; rejects with `LockTimeoutError`, or the signal's reason. */
  async lock(key: string | bigint, options: LockOptions = {}): Promise<AdvisoryLock> {
    const { display, id } = this.#parseKey(key);
    const waitMs = validateWait(options?.waitMs ?? this.#options.waitMs);
    const signal = validateSignal(options?.signal);
    signal?.throwIfAborted();
    this.#ensureOpen();
    const deadline = performance.now() + waitMs;
    const slot = await this.#takeSlot(display, id, waitMs, signal);
    const failures: Failures = { last: undefined, lastAttemptFailed: false };
    const lock = await this.#acquire(
      display,
      id,
      slot,
      waitMs === 0 ? null : deadline,
      signal,
      failures,
    );
    if (lock) return lock;
    // An outage is never reported as contention: if the wait ended on a failed attempt, say so.
    if (failures.lastAttemptFailed) throw explainDbError(failures.last, this.#options.schema);
    throw new LockTimeoutError(String(display), waitMs, { cause: failures.last });
  }

  /** The lock if it is free now (in this process and on the server), else null. */
  async tryLock(key: string | bigint): Promise<AdvisoryLock | null> {
    const { display, id } = this.#parseKey(key);
    this.#ensureOpen();
    const slot = this.#slots.tryEnter(id.toString());
    if (!slot) return null;
    return this.#acquire(display, id, slot, null, undefined, {
      last: undefined,
      lastAttemptFailed: false,
    });
  }

  /** Runs `fn` holding the lock and releases it afterwards, whatever `fn` does. */
  async withLock<T>(
    key: string | bigint,
    fn: (lock: AdvisoryLock) => Promise<T> | T,
    options?: LockOptions,
  ): Promise<T> {
    if (typeof fn !== 'function') {
      throw new InvalidArgumentError('withLock needs a function to run while holding the lock');
    }
    const lock = await this.lock(key, options);
    try {
      return await fn(lock);
    } finally {
      await lock[Symbol.asyncDispose]();
    }
  }

  /** Keys this process holds, by advisory lock id (for `inspect`). */
  heldKeys(): Map<bigint, string | bigint> {
    const keys = new Map<bigint, string | bigint>();
    for (const session of this.#live) {
      for (const [id, { lock }] of session?.held ?? []) keys.set(id, lock.key);
    }
    return keys;
  }

  /** Fails waiters with `ClosedError`, aborts every held lock's signal and ends the sessions. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing.abort(new ClosedError());
    // A session still opening closes itself once it sees #closed (see #session), so close()
    // waits for it only briefly: a connect that hangs on a stalled network must not hang close().
    const opening = Promise.allSettled(this.#opening.filter((s) => s !== undefined));
    const waited = await settle(opening, performance.now() + CLOSE_WAIT_FOR_OPENING_MS);
    const sessions =
      waited.kind === 'done'
        ? waited.value.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
        : this.#live.filter((s) => s !== undefined);
    await Promise.all(sessions.map((s) => s.close()));
  }

  /**
   * Waits up to `waitMs` for the lock id's slot in this process; rejects with
   * `LockTimeoutError`, the signal's reason, or `ClosedError` when the manager closes.
   */
  async #takeSlot(
    display: string | bigint,
    id: bigint,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<KeySlot> {
    const free = this.#slots.tryEnter(id.toString());
    if (free) return free;
    if (waitMs === 0) throw new LockTimeoutError(String(display), waitMs);
    const cancel = new Cancellation(String(display), waitMs, [signal, this.#closing.signal]);
    try {
      return await this.#slots.enter(id.toString(), cancel);
    } finally {
      cancel.dispose();
    }
  }

  /**
   * Takes the lock on the server for a caller that owns the key's slot. `deadline` null means
   * one try whose answer is awaited. Returns null when the key stayed busy; the slot is then
   * released (or, for a try still on the wire, released once its answer is dealt with).
   */
  async #acquire(
    display: string | bigint,
    id: bigint,
    slot: KeySlot,
    deadline: number | null,
    signal: AbortSignal | undefined,
    failures: Failures,
  ): Promise<SessionLock | null> {
    let slotPassedOn = false;
    let retryMs = FIRST_RETRY_MS;
    const entered = performance.now();
    try {
      for (;;) {
        this.#ensureOpen();
        const opened = await settle(this.#session(id), deadline ?? Infinity, signal);
        if (opened.kind === 'aborted') throw signal!.reason;
        if (
          opened.kind === 'timeout' &&
          (failures.answered || (deadline ?? Infinity) - entered < UNAVAILABLE_EVIDENCE_MS)
        ) {
          // The database answered (the key is busy) and the wait ran out between tries, or it
          // had (almost) run out in this process's own queue already: contention.
          return null;
        }
        if (opened.kind === 'timeout') {
          failures.last = new UnavailableError(
            'no advisory session could be opened before the wait ended',
            { cause: failures.last },
          );
          failures.lastAttemptFailed = true;
          return null;
        }
        if (opened.kind === 'failed') {
          failures.last = opened.error;
          failures.lastAttemptFailed = true;
          // A server restarting refuses connections for a moment: a waiter keeps waiting.
          if (deadline === null || !isTransient(opened.error)) {
            throw explainDbError(opened.error, this.#options.schema);
          }
          this.#options.onError(opened.error);
          if (!(await this.#pause(retryMs, deadline, signal))) return null;
          retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
          continue;
        }
        const session = opened.value;
        const attempt = session.tryLock(id);
        const outcome = await settle(attempt, deadline ?? Infinity, signal);
        if (
          outcome.kind === 'timeout' &&
          !failures.answered &&
          (deadline ?? Infinity) - entered >= UNAVAILABLE_EVIDENCE_MS
        ) {
          // The wait ran out before the database answered a single try: an outage, not a key
          // that is held.
          failures.last = new UnavailableError(
            'the database did not answer before the wait ended',
            { cause: failures.last },
          );
          failures.lastAttemptFailed = true;
        }
        if (outcome.kind === 'timeout' || outcome.kind === 'aborted') {
          // The try is on the wire and may yet be granted: give it back before this process
          // lets anyone else near the key, so no late grant is left behind on the session.
          slotPassedOn = true;
          attempt
            .then((granted) => (granted ? session.unlock(id) : false))
            .catch(() => false)
            .finally(() => slot.release());
          if (outcome.kind === 'aborted') throw signal!.reason;
          return null;
        }
        failures.lastAttemptFailed = outcome.kind === 'failed';
        if (outcome.kind === 'done') failures.answered = true;
        if (outcome.kind === 'failed') failures.last = outcome.error;
        if (outcome.kind === 'done' && outcome.value && session.alive) {
          const lock = new SessionLock(display, id, () => this.#release(session, id, slot));
          session.held.set(id, { lock, slot });
          slotPassedOn = true;
          return lock;
        }
        if (
          outcome.kind === 'failed' &&
          (session.alive ||
            this.#closed ||
            deadline === null ||
            outcome.error instanceof SessionChangedError) // a pooler: retrying cannot help
        ) {
          throw explainDbError(outcome.error, this.#options.schema);
        }
        // Busy, or the session died under the try (so nothing was left on the server): wait
        // and try again, on a fresh session if need be.
        if (deadline === null || !(await this.#pause(retryMs, deadline, signal))) return null;
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    } finally {
      if (!slotPassedOn) slot.release();
    }
  }

  /** Sleeps a jittered `ms` (never past the deadline); false if the deadline has come. */
  async #pause(ms: number, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    const left = deadline - performance.now();
    if (left <= 0) return false;
    const slept = await settle(
      delay(Math.min(ms * (0.5 + Math.random() / 2), left)),
      Infinity,
      signal,
    );
    if (slept.kind === 'aborted') throw signal!.reason;
    return true;
  }

  async #release(session: AdvisorySession, id: bigint, slot: KeySlot): Promise<boolean> {
    session.held.delete(id);
    try {
      return await session.unlock(id);
    } catch {
      return false; // the session died meanwhile, and the server dropped the lock with it
    } finally {
      slot.release();
    }
  }

  /** The session of a lock id's slot, opened on first use and again after one died. */
  #session(id: bigint): Promise<AdvisorySession> {
    const n = BigInt(this.#opening.length);
    const i = Number(((id % n) + n) % n);
    let opening = this.#opening[i];
    if (!opening) {
      opening = AdvisorySession.open(this.#db, this.#options.livenessIntervalMs, (s, end) =>
        this.#ended(i, s, end),
      ).then(async (session) => {
        if (this.#closed) {
          await session.close();
          throw new ClosedError();
        }
        if (!session.alive) throw new Error('the advisory session ended as it opened');
        this.#live[i] = session;
        return session;
      });
      this.#opening[i] = opening;
      opening.catch(() => {
        if (this.#opening[i] === opening) this.#opening[i] = undefined;
      });
    }
    return opening;
  }

  #ended(i: number, session: AdvisorySession, end: SessionEnd): void {
    if (this.#live[i] === session) {
      this.#live[i] = undefined;
      this.#opening[i] = undefined;
    }
    const cause = end.kind === 'closed' ? new ClosedError() : end.cause;
    const why =
      end.kind === 'closed'
        ? 'the PgFence was closed'
        : `its session connection was lost (${errorMessage(cause)})`;
    for (const { lock, slot } of session.held.values()) {
      lock.lose(cause, `advisory lock "${String(lock.key)}" is no longer held: ${why}`);
      slot.release();
    }
    session.held.clear();
    if (end.kind === 'lost') {
      try {
        this.#options.onError(cause);
      } catch {
        // a failing error callback must not stop the loss from being handled
      }
    }
  }

  #parseKey(key: unknown): { display: string | bigint; id: bigint } {
    const display = validateAdvisoryKey(key);
    return { display, id: advisoryKeyId(this.#options.schema, display) };
  }

  get #closed(): boolean {
    return this.#closing.signal.aborted;
  }

  #ensureOpen(): void {
    if (this.#closed) throw new ClosedError();
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
