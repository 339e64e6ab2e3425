import type { Cancellation } from '../util/cancellation.js';
import type { ReleaseListener, ReleaseSubscription } from '../lease/release-listener.js';
import type { Lease } from '../types.js';

/** What a waiting claim works with. @internal */
export interface ClaimWaitDeps {
  listener: ReleaseListener;
  pollIntervalMs: number;
  /** One claim statement. */
  attempt(): Promise<Lease[]>;
  /** After an empty attempt: whether a matching task is free, and when the next lease expires. */
  probe(): Promise<{ free: boolean; nextExpiryMs: number | null }>;
  /** Hands back leases granted after the caller stopped waiting. */
  discard(leases: Lease[]): void;
}

/** First pause before claiming again when free tasks were all busy (row-locked) for an instant. */
const BUSY_RETRY_MIN_MS = 1;
/** The busy pause doubles up to this. */
const BUSY_RETRY_MAX_MS = 50;
/** An expiry wake-up never comes sooner than this: many leases expiring must not spin claimers. */
const EXPIRY_FLOOR_MS = 20;

function jittered(ms: number): number {
  return ms * (0.75 + Math.random() / 2);
}

/**
 * Claims until at least one task is taken or `waitMs` passes (then: empty), or the wait is
 * cancelled (then: the cancellation's reason).
 *
 * Between attempts the claimer sleeps until something may have changed: a notification on the
 * caller's wake channel (a new task), a lease released anywhere (a task handed back), the next
 * lease expiry by the database clock (a crashed holder's task comes back), or a jittered poll of
 * at most `pollIntervalMs`. An empty attempt is followed by a probe: if a matching task has no
 * live lease, it was only skipped as busy (another claimer's row lock, for an instant), and the
 * claimer tries again within milliseconds instead of returning empty or sleeping.
 *
 * Subscriptions are reset before each attempt, so a wake-up that arrives while the attempt is
 * on its way is not lost; and while the LISTEN connection is not up yet, the first attempt is
 * repeated once it is.
 * @internal
 */
export async function claimWithWait(
  deps: ClaimWaitDeps,
  waitMs: number,
  wakeChannel: string | undefined,
  cancel: Cancellation,
): Promise<Lease[]> {
  const deadline = performance.now() + waitMs;
  const subscriptions: ReleaseSubscription[] = [deps.listener.subscribeAnyRelease()];
  if (wakeChannel !== undefined) subscriptions.push(deps.listener.subscribeChannel(wakeChannel));
  const listening = () =>
    deps.listener.ready && (wakeChannel === undefined || deps.listener.listensTo(wakeChannel));
  let busyMs = 0;
  try {
    for (;;) {
      for (const s of subscriptions) s.reset();
      const wasListening = listening();
      const attempt = deps.attempt();
      let leases: Lease[];
      try {
        leases = await cancel.race(attempt);
      } catch (error) {
        if (cancel.cancelled) {
          attempt.then(
            (late) => late.length > 0 && deps.discard(late),
            () => {},
          );
        }
        throw error;
      }
      if (leases.length > 0) return leases;
      if (performance.now() >= deadline) return [];
      if (!wasListening) {
        // A task announced before we listened would be missed: listen, then look once more.
        await cancel.race(
          wakeChannel === undefined
            ? deps.listener.whenReady()
            : deps.listener.whenListening(wakeChannel),
        );
        if (listening()) continue;
      }
      const probe = await cancel.race(deps.probe());
      const left = deadline - performance.now();
      if (probe.free) {
        busyMs = Math.min(BUSY_RETRY_MAX_MS, Math.max(BUSY_RETRY_MIN_MS, busyMs * 2));
        await cancel.sleep(Math.min(left, jittered(busyMs)));
        continue;
      }
      busyMs = 0;
      const expiry =
        probe.nextExpiryMs === null ? Infinity : Math.max(EXPIRY_FLOOR_MS, probe.nextExpiryMs);
      const sleepMs = Math.min(left, expiry, jittered(deps.pollIntervalMs));
      await cancel.sleep(Math.max(0, sleepMs), Promise.race(subscriptions.map((s) => s.next())));
    }
  } finally {
    for (const s of subscriptions) s.close();
  }
}
