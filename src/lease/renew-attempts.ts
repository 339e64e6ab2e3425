import { setTimeout as delay } from 'node:timers/promises';
import type { LeaseStore, RenewResult } from './lease-store.js';

/** The shortest bound given to one attempt: below this a round trip under load cannot fit. */
const MIN_ATTEMPT_MS = 50;
/** Pause between two attempts (jittered), so a refusing server is not hammered. */
const RETRY_PAUSE_MS = 50;

/**
 * Renews `terms` until an attempt answers or `deadline` (performance.now()) comes, whichever is
 * first. Each attempt is bounded by half the time left (at least `ttlMs / 6`), so one
 * attempt stuck on a dead connection leaves time for others; every attempt after a failure
 * runs on a fresh connection, since a silent network keeps dead pooled connections looking
 * alive. A transient failure therefore never costs a lease the database still holds.
 * Returns null when the deadline came first; every failure goes to `onError`.
 * @internal
 */
export async function renewUntil(
  store: LeaseStore,
  terms: readonly { key: string; token: bigint; ttlMs: number; holder?: boolean }[],
  deadline: number,
  options: { ttlMs: number; skipLocked: boolean; onError: (error: unknown) => void },
): Promise<RenewResult | null> {
  let fresh = false;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    // Half of what is left (never under ttl/6): a dead connection costs at most that, and a
    // retry on a fresh one still has the other half.
    const attemptMs = Math.max(
      MIN_ATTEMPT_MS,
      Math.min(left, Math.max(options.ttlMs / 6, left / 2)),
    );
    try {
      return await store.renew(terms, attemptMs, { skipLocked: options.skipLocked, fresh });
    } catch (error) {
      options.onError(error);
      fresh = true;
      const pause = RETRY_PAUSE_MS * (0.5 + Math.random());
      if (deadline - performance.now() <= pause) return null;
      await delay(pause);
    }
  }
}
