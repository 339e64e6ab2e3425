import { setTimeout as delay } from 'node:timers/promises';
import type { LeaseStore, RenewResult } from './lease-store.js';

/** The shortest bound given to one attempt: below this a round trip under load cannot fit. */
const MIN_ATTEMPT_MS = 50;
/** Pause between two attempts (jittered), so a refusing server is not hammered. */
const RETRY_PAUSE_MS = 50;

type Outcome = { ok: true; result: RenewResult } | { ok: false; error: unknown };

/**
 * Renews `terms` until an attempt answers or `deadline` (performance.now()) comes, whichever is
 * first. Every attempt may run until the deadline: a server that is merely slow (10,000 leases
 * on a loaded machine can take over a second) must not have its answer thrown away. But an
 * attempt that has not answered after half the time left (at least `ttlMs / 6`) may sit on a
 * dead pooled connection — a silent network keeps those looking alive — so a second attempt
 * is started beside it on a fresh connection, and the first answer wins (renewals are
 * idempotent: a lease's expiry only moves forward). A failed attempt is retried, on a fresh
 * connection, until the deadline. A transient failure therefore never costs a lease the
 * database still holds. Returns null when the deadline came first; failures go to `onError`.
 * @internal
 */
export async function renewUntil(
  store: LeaseStore,
  terms: readonly { key: string; token: bigint; ttlMs: number; holder?: boolean }[],
  deadline: number,
  options: { ttlMs: number; skipLocked: boolean; onError: (error: unknown) => void },
): Promise<RenewResult | null> {
  const pending = new Set<Promise<Outcome>>();
  const start = (fresh: boolean): void => {
    const timeoutMs = Math.max(MIN_ATTEMPT_MS, deadline - performance.now());
    const attempt: Promise<Outcome> = store
      .renew(terms, timeoutMs, { skipLocked: options.skipLocked, fresh })
      .then(
        (result): Outcome => ({ ok: true, result }),
        (error: unknown): Outcome => ({ ok: false, error }),
      )
      .finally(() => pending.delete(attempt));
    pending.add(attempt);
  };
  start(false);
  let hedged = false;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    if (pending.size === 0) {
      // Every attempt failed: pause, then again on a fresh connection.
      const pause = RETRY_PAUSE_MS * (0.5 + Math.random());
      if (left <= pause + MIN_ATTEMPT_MS) return null;
      await delay(pause);
      start(true);
      hedged = false;
      continue;
    }
    const hedgeInMs = hedged ? left : Math.max(options.ttlMs / 6, left / 2);
    const timer = new AbortController();
    const tick = delay(Math.min(left, hedgeInMs), 'tick' as const, { signal: timer.signal }).catch(
      () => 'aborted' as const,
    );
    const first = await Promise.race([...pending, tick]);
    timer.abort();
    if (first === 'tick' || first === 'aborted') {
      if (!hedged && deadline - performance.now() > MIN_ATTEMPT_MS) {
        hedged = true;
        start(true);
      }
      continue;
    }
    if (first.ok) return first.result;
    options.onError(first.error);
  }
}
