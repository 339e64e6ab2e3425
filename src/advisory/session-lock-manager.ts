import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Database } from '../db/database.js';
import { explainDbError, isTransient } from '../db/errors.js';
import {
  ClosedError,
  DeadlockError,
  InvalidArgumentError,
  LockTimeoutError,
  SessionChangedError,
  UnavailableError,
} from '../errors.js';
import { advisoryKeyId, validateAdvisoryKey } from '../keys.js';
import { Cancellation } from '../util/cancellation.js';
import {
  validateMode,
  validateSignal,
  validateWait,
  type LockMode,
  type ResolvedOptions,
} from '../options.js';
import type { AdvisoryLock, LockOptions, TryLockOptions } from '../types.js';
import { AdvisorySession, type HeldLock, type SessionEnd } from './advisory-session.js';
import { takeAll, type TakeAllResult } from './all-or-nothing.js';
import { HeldTurnstiles } from './held-turnstiles.js';
import { LockDelay } from './lock-delay.js';
import { LocalLocks, type LocalSlot } from './local-locks.js';
import { waitInServer } from './server-wait.js';
import { WaitSessions } from './wait-sessions.js';
import { SessionLock } from './session-lock.js';
import { settle } from '../util/settle.js';
import { NO_TELEMETRY, type Telemetry } from '../telemetry/telemetry.js';
import { optionsObject } from '../util/known-options.js';

const LOCK_OPTIONS = new Set(['waitMs', 'signal', 'mode']);
const TRY_LOCK_OPTIONS = new Set(['mode']);

/**
 * A waiter blocks in the server on a wait session of its own (server-wait.ts). It polls with
 * try-locks only when no wait session can be had (a jittered, doubling delay between tries); a
 * `lockAll` waits in the server for a busy key without keeping it, then tries its whole set.
 * Callers of this process waiting for the same key do not go to the server at all: they queue
 * in `LocalLocks` and are let in in turn.
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

/** Most keys one `lockAll` takes. */
const MAX_KEYS_AT_ONCE = 1_000;
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
  /** In-process admission per lock id, shared or exclusive (see local-locks.ts). */
  readonly #local = new LocalLocks();
  /** Sessions for callers blocked in the server (see server-wait.ts). */
  readonly #waits: WaitSessions;
  /** Aborted with `ClosedError` by close(): fails the callers waiting for a slot. */
  readonly #closing = new AbortController();
  readonly #opening: (Promise<AdvisorySession> | undefined)[];
  readonly #live: (AdvisorySession | undefined)[];

  readonly #telemetry: Telemetry;
  /**
   * The first sign that a session changed backend (a transaction-mode pooler): from then on
   * this manager refuses session locks rather than open session after session on a pooler
   * that would hand each one's statements to other clients' server connections.
   */
  #changed: SessionChangedError | undefined;
  /** No grant on a new server incarnation before its old holders must have noticed. */
  readonly #lockDelay: LockDelay;

  constructor(db: Database, options: ResolvedOptions, telemetry: Telemetry = NO_TELEMETRY) {
    this.#telemetry = telemetry;
    this.#db = db;
    this.#options = options;
    // Every caller waiting for a slot listens on it.
    setMaxListeners(0, this.#closing.signal);
    this.#opening = new Array<undefined>(options.advisorySessions).fill(undefined);
    this.#live = new Array<undefined>(options.advisorySessions).fill(undefined);
    this.#waits = new WaitSessions(
      db,
      options.livenessIntervalMs,
      (s, end) => this.#lose(s, end),
      (error) => this.#report(error),
    );
    this.#lockDelay = new LockDelay(options.schema, options.lockDelayMs, options.onError);
  }

  /** Waits up to `waitMs` for the key; rejects with `LockTimeoutError`, or the signal's reason. */
  async lock(key: string | bigint, options: LockOptions = {}): Promise<AdvisoryLock> {
    const { display, id } = this.#parseKey(key);
    optionsObject(options, LOCK_OPTIONS, 'lock');
    const mode = validateMode(options?.mode);
    const waitMs = validateWait(options?.waitMs ?? this.#options.waitMs);
    const signal = validateSignal(options?.signal);
    signal?.throwIfAborted();
    this.#ensureOpen();
    this.#ensureOneSession();
    const deadline = performance.now() + waitMs;
    const slot = await this.#takeSlot(display, id, mode, waitMs, signal);
    const failures: Failures = { last: undefined, lastAttemptFailed: false };
    const lock = await this.#acquire(
      display,
      id,
      mode,
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
  async tryLock(key: string | bigint, options: TryLockOptions = {}): Promise<AdvisoryLock | null> {
    const { display, id } = this.#parseKey(key);
    optionsObject(options, TRY_LOCK_OPTIONS, 'tryLock');
    const mode = validateMode(options?.mode);
    this.#ensureOpen();
    this.#ensureOneSession();
    const slot = this.#local.tryEnter(id, mode);
    if (!slot) return null;
    return this.#acquire(display, id, mode, slot, null, undefined, {
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

  /**
   * Every key or none, waiting up to `waitMs`: the locks come back in the order asked. While it
   * waits the caller holds none of them, in this process or on the server.
   */
  async lockAll(
    keys: readonly (string | bigint)[],
    options: LockOptions = {},
  ): Promise<AdvisoryLock[]> {
    const parsed = this.#parseKeys(keys);
    optionsObject(options, LOCK_OPTIONS, 'lockAll');
    const mode = validateMode(options?.mode);
    const waitMs = validateWait(options?.waitMs ?? this.#options.waitMs);
    const signal = validateSignal(options?.signal);
    signal?.throwIfAborted();
    this.#ensureOpen();
    this.#ensureOneSession();
    const label = parsed.map((k) => String(k.display)).join(', ');
    const ids = parsed.map((k) => k.id);
    const cancel = new Cancellation(label, waitMs, [signal, this.#closing.signal]);
    const deadline = performance.now() + waitMs;
    let retryMs = FIRST_RETRY_MS;
    // An exclusive set that waits holds the turnstiles of the keys that kept it waiting, so
    // that shared callers that come after it wait behind it (DESIGN guarantee 11; turnstile.ts).
    const turnstiles =
      mode === 'exclusive' && waitMs > 0 ? new HeldTurnstiles(this.#waits) : undefined;
    // In this process, the same: later shared callers of those keys wait behind the set.
    const heldBack = new Set<bigint>();
    const holdBack = (id: bigint): void => {
      if (!turnstiles || heldBack.has(id)) return;
      heldBack.add(id);
      this.#local.holdBack(id);
    };
    try {
      for (;;) {
        this.#ensureOneSession();
        const slots = this.#local.tryEnterAll(ids, mode);
        if (!slots) {
          // Busy in this process: wait for a release of a key that is in the way. Not behind
          // turnstiles: a caller of this process that holds a key's slot may be waiting at one.
          if (waitMs === 0) throw new LockTimeoutError(label, waitMs);
          turnstiles?.lower();
          const blocker = this.#local.blocker(ids, mode) ?? ids[0]!;
          holdBack(blocker);
          await cancel.race(this.#local.released(blocker));
          continue;
        }
        const taken = await this.#takeAll(parsed, mode, slots, cancel);
        if (Array.isArray(taken)) return taken;
        if (waitMs === 0) throw new LockTimeoutError(label, waitMs);
        // Busy on the server: wait in the server's queue for a busy key to be released (holding
        // nothing but turnstiles), or else poll with a jittered, doubling pause.
        if (taken !== null) {
          holdBack(taken);
          try {
            await turnstiles?.raise(taken, deadline, signal);
          } catch (error) {
            if (error instanceof SessionChangedError) this.#noteChange(error);
            throw error;
          }
          if (await this.#passThrough(label, taken, mode, deadline, signal, turnstiles?.session)) {
            retryMs = FIRST_RETRY_MS;
            continue;
          }
        }
        await cancel.sleep(retryMs * (0.5 + Math.random() / 2));
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    } finally {
      turnstiles?.lower();
      for (const id of heldBack) this.#local.letGo(id);
      cancel.dispose();
    }
  }

  /** Keys this process holds, by advisory lock id (for `inspect`). */
  heldKeys(): Map<bigint, string | bigint> {
    const keys = new Map<bigint, string | bigint>();
    for (const session of [...this.#live, ...this.#waits.sessions()]) {
      for (const { lock } of session?.held ?? []) keys.set(lock.id, lock.key);
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
    await Promise.all([...sessions.map((s) => s.close()), this.#waits.close()]);
  }

  /**
   * Waits up to `waitMs` for the lock id's slot in this process; rejects with
   * `LockTimeoutError`, the signal's reason, or `ClosedError` when the manager closes.
   */
  async #takeSlot(
    display: string | bigint,
    id: bigint,
    mode: LockMode,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<LocalSlot> {
    const free = this.#local.tryEnter(id, mode);
    if (free) return free;
    if (waitMs === 0) throw new LockTimeoutError(String(display), waitMs);
    const cancel = new Cancellation(String(display), waitMs, [signal, this.#closing.signal]);
    try {
      return await this.#local.enter(id, mode, cancel);
    } finally {
      cancel.dispose();
    }
  }

  /**
   * Takes the lock on the server for a caller admitted in this process. It tries on the shared
   * session first (one batched round trip, the uncontended path); a waiter whose try failed
   * then blocks in the server on a wait session of its own. `deadline` null means one try
   * whose answer is awaited. Returns null when the key stayed busy; the slot is then released
   * (or, for a try still on the wire, released once its answer is dealt with).
   */
  async #acquire(
    display: string | bigint,
    id: bigint,
    mode: LockMode,
    slot: LocalSlot,
    deadline: number | null,
    signal: AbortSignal | undefined,
    failures: Failures,
  ): Promise<SessionLock | null> {
    let slotPassedOn = false;
    let retryMs = FIRST_RETRY_MS;
    const entered = performance.now();
    const unlock = mode === 'shared' ? 'unlock-shared' : 'unlock';
    try {
      for (;;) {
        this.#ensureOpen();
        this.#ensureOneSession();
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
        const gate = this.#lockDelay.gateOf(session);
        if (gate > performance.now()) {
          // The server is a new incarnation still in its lock-delay: every key counts as held
          // (by a holder on the old one that may not know yet), so this is contention — tryLock
          // gets null, a waiter waits it out within its wait — never an outage.
          failures.answered = true;
          if (!(await this.#lockDelay.waitOut(gate, deadline, signal))) return null;
          continue;
        }
        const op =
          mode === 'exclusive' ? 'lock' : session.holds(id) ? 'join-shared' : 'lock-shared';
        const attempt = session.run(op, id);
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
            .then((granted) => (granted ? session.run(unlock, id) : false))
            .catch(() => false)
            .finally(() => slot.release());
          if (outcome.kind === 'aborted') throw signal!.reason;
          return null;
        }
        failures.lastAttemptFailed = outcome.kind === 'failed';
        if (outcome.kind === 'done') failures.answered = true;
        if (outcome.kind === 'failed') failures.last = outcome.error;
        if (outcome.kind === 'done' && outcome.value && session.alive) {
          slotPassedOn = true;
          return this.#register(session, display, id, mode, slot);
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
        if (deadline === null) return null;
        if (outcome.kind === 'done' && session.alive) {
          // Busy: wait in the server's queue, woken at the release.
          const waited = await this.#waitInServer(display, id, mode, slot, deadline, signal);
          if (waited === 'passed-on') {
            slotPassedOn = true;
            return null;
          }
          if (waited instanceof SessionLock) {
            slotPassedOn = true;
            return waited;
          }
          if (waited === 'timeout') return null;
          // 'poll': no wait session to be had, or it failed: poll instead.
        }
        // The session died under the try (nothing was left on the server), or no wait session:
        // wait and try again, on a fresh session if need be.
        if (!(await this.#pause(retryMs, deadline, signal))) return null;
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    } finally {
      if (!slotPassedOn) slot.release();
    }
  }

  /**
   * Blocks in the server for the key on a wait session. Returns the lock, 'timeout', 'poll'
   * (no wait session now, or it failed in a way worth retrying) or 'passed-on' (timed out with
   * the statement still out: the slot is released once it has ended). Rejects with the
   * signal's reason (the slot is then passed on too) or a `DeadlockError`.
   */
  async #waitInServer(
    display: string | bigint,
    id: bigint,
    mode: LockMode,
    slot: LocalSlot,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<SessionLock | 'timeout' | 'poll' | 'passed-on'> {
    const session = await this.#checkoutWait(deadline, signal);
    if (session === 'timeout') return 'timeout';
    if (session === null) return 'poll';
    // A fresh wait session may have reached another server than the shared one did.
    const passed = await this.#passLockDelay(session, deadline, signal);
    if (passed !== 'passed') return passed;
    let freed = false;
    let passedOn = false;
    try {
      const result = await waitInServer({
        session,
        key: String(display),
        id,
        mode,
        deadline,
        signal,
        graceMs: this.#options.livenessIntervalMs,
        cancel: (pid) => this.#db.query('SELECT pg_cancel_backend($1)', [pid]),
        free: (reusable) => {
          freed = true;
          this.#waits.checkin(session, reusable);
          if (passedOn) slot.release();
        },
      });
      if (result === 'granted') {
        if (!session.alive) return 'poll';
        return this.#register(session, display, id, mode, slot);
      }
      if (freed) return 'timeout';
      passedOn = true;
      return 'passed-on';
    } catch (error) {
      if (!freed) {
        passedOn = true; // abandoned with its statement out: the slot passes on once it ends
        throw error;
      }
      if (error instanceof DeadlockError || signal?.aborted || this.#closed) throw error;
      if (!session.alive && isTransient(error)) return 'poll';
      throw error;
    }
  }

  /**
   * Waits until `session`'s server is past its lock-delay, within `deadline`. Otherwise the
   * session goes back (and the caller polls after a failure, or gives up at the deadline).
   */
  async #passLockDelay(
    session: AdvisorySession,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<'passed' | 'poll' | 'timeout'> {
    let result: 'passed' | 'poll' | 'timeout' = 'timeout';
    try {
      const gate = await settle(this.#lockDelay.grantableAt(session), deadline, signal);
      if (gate.kind === 'aborted') throw signal!.reason;
      if (gate.kind === 'failed') result = 'poll';
      else if (
        gate.kind === 'done' &&
        (await this.#lockDelay.waitOut(gate.value, deadline, signal))
      )
        result = 'passed';
      return result;
    } finally {
      if (result !== 'passed') this.#waits.checkin(session);
    }
  }

  /**
   * Waits on a wait session until `id` is released, taking and giving it back in one statement.
   * False when no wait session could be had (the caller polls instead). Rejects like the wait.
   */
  async #passThrough(
    label: string,
    id: bigint,
    mode: LockMode,
    deadline: number,
    signal: AbortSignal | undefined,
    own?: AdvisorySession,
  ): Promise<boolean> {
    const session = own ?? (await this.#checkoutWait(deadline, signal));
    if (session === null || session === 'timeout') return false;
    this.#ensureOpen();
    try {
      await waitInServer({
        session,
        key: label,
        id,
        mode,
        deadline,
        signal,
        then: 'pass',
        graceMs: this.#options.livenessIntervalMs,
        cancel: (pid) => this.#db.query('SELECT pg_cancel_backend($1)', [pid]),
        // A session of the caller's own (holding its turnstiles) stays the caller's.
        free: (reusable) => {
          if (!own) this.#waits.checkin(session, reusable);
        },
      });
    } catch (error) {
      if (signal?.aborted || this.#closed || error instanceof SessionChangedError) throw error;
      return false; // a failed wait session: poll instead
    }
    return true;
  }

  /**
   * Several keys on one session in one all-or-nothing statement: the locks, or when a key was
   * busy, that key's id (null if unknown).
   */
  async #takeAll(
    keys: readonly { display: string | bigint; id: bigint }[],
    mode: LockMode,
    slots: LocalSlot[],
    cancel: Cancellation,
  ): Promise<SessionLock[] | bigint | null> {
    const ids = keys.map((k) => k.id);
    const unlock = mode === 'shared' ? 'unlock-shared' : 'unlock';
    let passedOn = false;
    try {
      let session: AdvisorySession;
      try {
        session = await cancel.race(this.#session(ids[0]!));
      } catch (error) {
        if (!cancel.cancelled && isTransient(error)) return null;
        throw error;
      }
      // In its lock-delay every key counts as held (see #acquire): busy, try again.
      if (this.#lockDelay.gateOf(session) > performance.now()) return null;
      const check = mode === 'shared' && ids.some((id) => session.holds(id));
      const attempt = session.solo(takeAll(ids, mode, check));
      let result: TakeAllResult;
      try {
        result = await cancel.race(attempt);
      } catch (error) {
        if (cancel.cancelled) {
          // Given up with the statement out: a late grant is given back before the slots pass on.
          passedOn = true;
          attempt
            .then((got) => (got.all ? Promise.all(ids.map((id) => session.run(unlock, id))) : []))
            .catch(() => [])
            .finally(() => slots.forEach((s) => s.release()));
          throw error;
        }
        if (!session.alive && !(error instanceof SessionChangedError) && !this.#closed) {
          return null; // the session died under it (nothing left on the server): try again
        }
        throw error;
      }
      if (!session.alive) return null;
      if (!result.all) return result.blocked;
      passedOn = true;
      return keys.map((k, i) => this.#register(session, k.display, k.id, mode, slots[i]!));
    } finally {
      if (!passedOn) for (const s of slots) s.release();
    }
  }

  #register(
    session: AdvisorySession,
    display: string | bigint,
    id: bigint,
    mode: LockMode,
    slot: LocalSlot,
  ): SessionLock {
    const held: HeldLock = {
      lock: new SessionLock(display, id, mode, () => this.#release(session, held)),
      slot,
    };
    session.held.add(held);
    return held.lock;
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

  async #release(session: AdvisorySession, held: HeldLock): Promise<boolean> {
    session.held.delete(held);
    try {
      return await session.run(
        held.lock.mode === 'shared' ? 'unlock-shared' : 'unlock',
        held.lock.id,
      );
    } catch {
      return false; // the session died meanwhile, and the server dropped the lock with it
    } finally {
      held.slot.release();
      this.#waits.checkin(session);
    }
  }

  /** The session of a lock id's slot, opened on first use and again after one died. */
  #session(id: bigint): Promise<AdvisorySession> {
    const n = BigInt(this.#opening.length);
    const i = Number(((id % n) + n) % n);
    let opening = this.#opening[i];
    if (!opening) {
      opening = AdvisorySession.open(this.#db, {
        livenessMs: this.#options.livenessIntervalMs,
        onEnd: (s, end) => this.#ended(i, s, end),
        onError: (error) => this.#report(error),
      }).then(async (session) => {
        // Before its first grant: how long its server's incarnation is still in lock-delay.
        await this.#lockDelay.grantableAt(session);
        if (this.#closed) {
          await session.close();
          throw new ClosedError();
        }
        if (!session.alive) throw new Error('the advisory session ended as it opened');
        this.#live[i] = session;
        this.#telemetry.advisorySessions(1);
        return session;
      });
      this.#opening[i] = opening;
      opening.catch((error: unknown) => {
        if (error instanceof SessionChangedError) this.#noteChange(error);
        if (this.#opening[i] === opening) this.#opening[i] = undefined;
      });
    }
    return opening;
  }

  #ended(i: number, session: AdvisorySession, end: SessionEnd): void {
    if (this.#live[i] === session) {
      this.#telemetry.advisorySessions(-1);
      this.#live[i] = undefined;
      this.#opening[i] = undefined;
    }
    this.#lose(session, end);
  }

  /** A session ended: its locks are gone, and their holders learn it from their signals. */
  #lose(session: AdvisorySession, end: SessionEnd): void {
    const cause = end.kind === 'closed' ? new ClosedError() : end.cause;
    if (cause instanceof SessionChangedError) this.#noteChange(cause);
    const why =
      end.kind === 'closed'
        ? 'the PgFence was closed'
        : `its session connection was lost (${errorMessage(cause)})`;
    for (const { lock, slot } of session.held) {
      this.#telemetry.lost('advisory', end.kind === 'closed' ? 'closed' : 'session');
      lock.lose(cause, `advisory lock "${String(lock.key)}" is no longer held: ${why}`);
      slot.release();
    }
    const lost = session.held.size > 0;
    session.held.clear();
    if (end.kind === 'lost' && (lost || !this.#waits.owns(session))) this.#report(cause);
  }

  #report(error: unknown): void {
    try {
      this.#options.onError(error);
    } catch {
      // a failing error callback must not stop the loss from being handled
    }
  }

  /** A wait session by `deadline` (see `WaitSessions.checkoutWithin`); a pooler sign is noted. */
  async #checkoutWait(
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<AdvisorySession | 'timeout' | null> {
    try {
      return await this.#waits.checkoutWithin(deadline, signal);
    } catch (error) {
      if (error instanceof SessionChangedError) this.#noteChange(error);
      throw error;
    }
  }

  #noteChange(error: SessionChangedError): void {
    this.#changed ??= error;
  }

  /** Refuses session locks once a session changed backend (see `#changed`). */
  #ensureOneSession(): void {
    if (this.#changed === undefined) return;
    throw new SessionChangedError(
      'session locks are refused: this PgFence saw an advisory session change backend, so a ' +
        'transaction-mode pooler sits between it and PostgreSQL, and session locks cannot be ' +
        'held through it. Use leases (fence.lease) or fence.xactLock inside a transaction ' +
        'there, or give session locks a direct or session-pooled connection',
      { cause: this.#changed },
    );
  }

  #parseKey(key: unknown): { display: string | bigint; id: bigint } {
    const display = validateAdvisoryKey(key);
    return { display, id: advisoryKeyId(this.#options.schema, display) };
  }

  /** A non-empty array of distinct keys (by lock id: colliding hashes count as the same key). */
  #parseKeys(keys: unknown): { display: string | bigint; id: bigint }[] {
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS_AT_ONCE) {
      throw new InvalidArgumentError(
        `lockAll needs an array of 1 to ${MAX_KEYS_AT_ONCE} keys, got ${Array.isArray(keys) ? `${keys.length} keys` : typeof keys}`,
      );
    }
    const parsed = keys.map((key) => this.#parseKey(key));
    const seen = new Set<bigint>();
    for (const { display, id } of parsed) {
      if (seen.has(id)) {
        throw new InvalidArgumentError(`lockAll was given the key "${String(display)}" twice`);
      }
      seen.add(id);
    }
    return parsed;
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
