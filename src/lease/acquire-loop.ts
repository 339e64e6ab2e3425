import { isTransient } from '../db/errors.js';
import { LockTimeoutError, UnavailableError } from '../errors.js';
import type { Cancellation } from './cancellation.js';
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

/** The pause before trying again a key whose expired row was busy. */
const BUSY_RETRY_MS = 20;

/** Pauses before trying again after a transient database error (a restart, a dropped connection). */
const TRANSIENT_RETRY_MS = [100, 250, 500, 1_000, 2_000];

/** Jitter so that waiters of one key in several processes do not retry in lockstep. */
function jittered(ms: number): number {
  return ms + Math.random() * Math.min(100, 10 + ms * 0.1);
}

/**
 * Asks for one key until it is granted, `waitMs` passes or the wait is cancelled. Between
 * attempts the waiter sleeps until the key's release is announced (NOTIFY), or — for a
 * notification that never comes, e.g. an expiry — until the holder's expiry by the database's
 * own clock, and never longer than `pollIntervalMs`.
 * A grant that arrives after the caller gave up is handed back at once.
 * @internal
 */
export async function acquireWithWait(
  deps: AcquireLoopDeps,
  request: AcquireRequest & { waitMs: number },
  cancel: Cancellation,
): Promise<Acquired> {
  const started = performance.now();
  let transientFailures = 0;
  /** The last transient failure, given as the cause of a timeout that follows it. */
  let lastFailure: unknown;
  let answered = false;
  /** Kept after a later answer, for the cause of a LockTimeoutError. */
  let lastTransient: unknown;
  const subscription = deps.listener.subscribe(request.key);
  try {
    for (;;) {
      subscription.reset();
      const listening = deps.listener.ready;
      const attempt = deps.store.acquire(request);
      let outcome: AcquireOutcome;
      try {
        // With waitMs 0 the single attempt is the whole wait: let it finish.
        outcome = request.waitMs === 0 ? await attempt : await cancel.race(attempt);
        transientFailures = 0;
        answered = true;
        lastFailure = undefined;
      } catch (error) {
        if (cancel.cancelled) {
          attempt.then(
            (late) => late.acquired && deps.discard(late),
            () => {},
          );
          // The wait ran out while the database had not answered since its last failure (or at
          // all): nobody can tell whether the key is held, so this is no timeout.
          if (error instanceof LockTimeoutError && (lastFailure !== undefined || !answered)) {
            throw new UnavailableError(
              `the database did not answer in time: no answer for "${request.key}" within ` +
                `${request.waitMs} ms`,
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
        if (!isTransient(error) || performance.now() - started + pauseMs >= request.waitMs) {
          throw error;
        }
        lastFailure = error;
        lastTransient = error;
        deps.onRetry(error);
        transientFailures += 1;
        await cancel.sleep(jittered(pauseMs));
        continue;
      }
      if (outcome.acquired) {
        if (cancel.cancelled) {
          deps.discard(outcome);
          throw cancel.reason;
        }
        return outcome;
      }
      if (performance.now() - started >= request.waitMs) {
        throw new LockTimeoutError(request.key, request.waitMs, { cause: lastTransient });
      }
      if (!listening) {
        // The release may have come before we were listening: listen, then look once more.
        await cancel.race(deps.listener.whenReady());
        if (deps.listener.ready) continue;
      }
      const left = outcome.holderExpiresInMs;
      // An expired row that was not granted is busy (a guarded write, a release or reap in
      // flight): it frees up in moments, but not at once.
      const sleepMs = Math.min(
        deps.pollIntervalMs,
        left === null ? 0 : Math.max(BUSY_RETRY_MS, left),
      );
      await cancel.sleep(jittered(sleepMs), subscription.next());
    }
  } finally {
    subscription.close();
  }
}
