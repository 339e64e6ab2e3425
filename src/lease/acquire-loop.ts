import { isTransient } from '../db/errors.js';
import { LockTimeoutError, PermitsMismatchError, UnavailableError } from '../errors.js';
import type { Cancellation } from '../util/cancellation.js';
import { settleWithin } from '../util/timers.js';
import type { AcquireOutcome } from './lease-sql.js';
import type { AcquireRequest, LeaseStore } from './lease-store.js';
import type { ReleaseListener } from './release-listener.js';

type Acquired = Extract<AcquireOutcome, { acquired: true }>;

/** What the wait loop works with. @internal */
export interface AcquireLoopDeps {
  store: LeaseStore;
  listener: ReleaseListener;
  pollIntervalMs: number;
  /** Gives back a term that was granted after its caller stopped waiting. */
  discard(outcome: Acquired): void;
  /** Told of each transient failure the wait outlives (to report an outage while waiting). */
  onRetry(error: unknown): void;
}

/** One attempt's answer to the generic wait loop. @internal */
export type Step<T> =
  | { granted: T }
  | {
      /** How long the thing in the way has left (Infinity: until woken; 0: busy a moment). */
      retryInMs: number | null;
      /** The caller's place in the database queue, if it has one. */
      waiter: bigint | null;
      /** A set's places, one per key of the wait (in the order of `keys`; null where none). */
      places?: readonly (bigint | null)[] | null;
      /** Ask again at once (to take a place in the queue). */
      again?: boolean;
    };

/** The pause before trying again a key whose expired row was busy. */
const BUSY_RETRY_MS = 20;

/** Pauses before trying again after a transient database error (a restart, a dropped connection). */
const TRANSIENT_RETRY_MS = [100, 250, 500, 1_000, 2_000];

/**
 * A queued waiter asks again at least this often: each attempt refreshes its place in the
 * queue, which lapses (a crashed waiter) after QUEUE_TTL_FACTOR times as long.
 */
const QUEUE_REFRESH_MS = 2_000;
const QUEUE_TTL_FACTOR = 3;

/** How long a wait that ends may take to give up its place in the queue. */
const LEAVE_QUEUE_BOUND_MS = 250;

/** How long a waiter's place in the queue lasts without a refresh. @internal */
export function queueTtlMs(pollIntervalMs: number): number {
  return Math.min(QUEUE_REFRESH_MS, pollIntervalMs) * QUEUE_TTL_FACTOR + 1_000;
}

/** Jitter so that waiters of one key in several processes do not retry in lockstep. */
function jittered(ms: number): number {
  return ms + Math.random() * Math.min(100, 10 + ms * 0.1);
}

/**
 * Asks until an attempt is granted, `waitMs` passes or the wait is cancelled. Between attempts
 * the waiter sleeps until a release of one of `keys` is announced (NOTIFY), or — for a
 * notification that never comes, e.g. an expiry — until the holder's expiry by the database's
 * own clock, and never longer than `pollIntervalMs` (nor, for a queued waiter, longer than its
 * place in the queue lasts). A grant that arrives after the caller gave up is handed back at
 * once, and a place in the queue is left.
 * @internal
 */
export async function waitFor<T>(
  deps: {
    listener: ReleaseListener;
    pollIntervalMs: number;
    discard(granted: T): void;
    /** Gives up a place in the queue; never rejects. */
    leaveQueue(waiter: bigint): Promise<void>;
    onRetry(error: unknown): void;
  },
  keys: readonly string[],
  waitMs: number,
  cancel: Cancellation,
  attempt: (
    waiter: bigint | null,
    round: number,
    places: readonly (bigint | null)[] | null,
  ) => Promise<Step<T>>,
): Promise<T> {
  const started = performance.now();
  let transientFailures = 0;
  /** The last transient failure, given as the cause of a timeout that follows it. */
  let lastFailure: unknown;
  let answered = false;
  /** Kept after a later answer, for the cause of a LockTimeoutError. */
  let lastTransient: unknown;
  const what = keys.length === 1 ? keys[0]! : keys.join(', ');
  let waiter: bigint | null = null;
  let places: readonly (bigint | null)[] | null = null;
  const subscriptions = keys.map((key) => deps.listener.subscribe(key));
  const leave = (one: bigint | null, set: readonly (bigint | null)[] | null | undefined) =>
    Promise.all([one, ...(set ?? [])].filter((id) => id !== null).map((id) => deps.leaveQueue(id)));
  const settle = (late: Step<T>): void => {
    if ('granted' in late) deps.discard(late.granted);
    else void leave(late.waiter, late.places);
  };
  try {
    for (let round = 0; ; round += 1) {
      for (const s of subscriptions) s.reset();
      const listening = deps.listener.ready;
      const pending = attempt(waiter, round, places);
      let step: Step<T>;
      try {
        // With waitMs 0 the single attempt is the whole wait: let it finish.
        step = waitMs === 0 ? await pending : await cancel.race(pending);
        transientFailures = 0;
        answered = true;
        lastFailure = undefined;
      } catch (error) {
        if (cancel.cancelled) {
          // Not waited for: an attempt still in flight may be one the database never answers,
          // and the wait must end at its bound; whatever it yields is handed back when it comes.
          void pending.then(settle, () => {});
          // The wait ran out while the database had not answered since its last failure (or at
          // all): nobody can tell whether the key is held, so this is no timeout.
          if (error instanceof LockTimeoutError && (lastFailure !== undefined || !answered)) {
            throw new UnavailableError(
              `the database did not answer in time: no answer for "${what}" within ${waitMs} ms`,
              { cause: lastFailure },
            );
          }
          throw error;
        }
        // A waiter outlives a database restart or a dropped connection: the wait goes on
        // until waitMs, as it would while the key was simply held. An attempt that failed
        // this way took nothing (its transaction did not commit).
        const pauseMs =
          TRANSIENT_RETRY_MS[Math.min(transientFailures, TRANSIENT_RETRY_MS.length - 1)]!;
        // A wait that ends on a failed attempt reports the failure (an UnavailableError for an
        // outage), never a timeout that would read as "the key is held".
        if (!isTransient(error) || performance.now() - started + pauseMs >= waitMs) {
          throw error;
        }
        lastFailure = error;
        lastTransient = error;
        deps.onRetry(error);
        transientFailures += 1;
        await cancel.sleep(jittered(pauseMs));
        continue;
      }
      if ('granted' in step) {
        waiter = null;
        places = null;
        if (cancel.cancelled) {
          deps.discard(step.granted);
          throw cancel.reason;
        }
        return step.granted;
      }
      waiter = step.waiter;
      places = step.places ?? null;
      // A release addressed to a waiter ahead of this one does not wake it. (A place that
      // lapsed is taken anew under a new id; a release addressed to that id while the attempt
      // was in flight is missed, and the next poll, at most QUEUE_REFRESH_MS away, asks.)
      subscriptions.forEach((s, i) => s.setWaiter(places?.[i] ?? waiter));
      if (step.again && waitMs > 0) continue;
      if (performance.now() - started >= waitMs) {
        throw new LockTimeoutError(what, waitMs, { cause: lastTransient });
      }
      if (!listening) {
        // The release may have come before we were listening: listen, then look once more.
        await cancel.race(deps.listener.whenReady());
        if (deps.listener.ready) continue;
      }
      const left = step.retryInMs;
      const queued = waiter !== null || places !== null;
      const cap = queued ? Math.min(deps.pollIntervalMs, QUEUE_REFRESH_MS) : deps.pollIntervalMs;
      // An expired row that was not granted is busy (a guarded write, a release or reap in
      // flight): it frees up in moments, but not at once.
      const sleepMs = Math.min(cap, left === null ? 0 : Math.max(BUSY_RETRY_MS, left));
      await cancel.sleep(jittered(sleepMs), Promise.race(subscriptions.map((s) => s.next())));
    }
  } finally {
    for (const s of subscriptions) s.close();
    // A caller that gave up must not stay in the key's queue, where it would make the next
    // caller (shared, a semaphore's, a try) wait behind nobody until the place lapses. Its
    // wait ends once the place is given up, or after a short bound if the database does not
    // answer (the place then lapses by its own expiry).
    if (waiter !== null || places !== null) {
      await settleWithin(leave(waiter, places), LEAVE_QUEUE_BOUND_MS);
    }
  }
}

/** The PermitsMismatchError for an outcome that reports another permit count, if it does. */
export function mismatch(
  request: { key: string; permits?: number | null },
  outcome: AcquireOutcome,
): PermitsMismatchError | undefined {
  if (outcome.acquired || outcome.heldPermits === undefined) return undefined;
  return new PermitsMismatchError(request.key, request.permits ?? 0, outcome.heldPermits);
}

/** An attempt's outcome as a step of the wait loop (or the error it stands for). */
export function toStep(
  request: { key: string; permits?: number | null },
  outcome: AcquireOutcome,
): Step<Acquired> {
  const error = mismatch(request, outcome);
  if (error) throw error;
  if (outcome.acquired) return { granted: outcome };
  return { retryInMs: outcome.holderExpiresInMs, waiter: outcome.waiter ?? null };
}

/**
 * Asks for one key until it is granted, `waitMs` passes or the wait is cancelled. A plain lease
 * tries first through the coalesced statement (the uncontended path: one shared commit); a
 * caller that has to wait, and every shared or semaphore caller, asks through
 * `acquire_lease_batch` (shared with the other attempts of this PgFence made at the same time),
 * which keeps its place in the key's queue in the database.
 * @internal
 */
export async function acquireWithWait(
  deps: AcquireLoopDeps,
  request: AcquireRequest & { waitMs: number },
  cancel: Cancellation,
): Promise<Acquired> {
  const plain = (request.mode ?? 'exclusive') === 'exclusive' && (request.permits ?? null) === null;
  const ttl = request.waitMs === 0 ? null : queueTtlMs(deps.pollIntervalMs);
  return waitFor<Acquired>(
    {
      listener: deps.listener,
      pollIntervalMs: deps.pollIntervalMs,
      discard: (late) => deps.discard(late),
      onRetry: (error) => deps.onRetry(error),
      leaveQueue: (waiter) => deps.store.leaveQueue(waiter).catch(() => {}),
    },
    [request.key],
    request.waitMs,
    cancel,
    async (waiter, round) => {
      if (plain && round === 0) {
        // Not granted at first sight: take a place in the queue at once, so that shared
        // callers arriving from now on wait behind this one.
        const step = toStep(request, await deps.store.acquire(request));
        return 'granted' in step ? step : { ...step, again: true };
      }
      return toStep(request, await deps.store.acquireOne(request, waiter, ttl));
    },
  );
}
