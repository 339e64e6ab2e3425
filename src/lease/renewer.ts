import { termId } from './lease-sql.js';
import type { LeaseHandle } from './lease-handle.js';
import type { LeaseStore } from './lease-store.js';
import { MAX_TIMER_MS } from '../util/timers.js';
import { renewUntil } from './renew-attempts.js';
import { NO_TELEMETRY, type Telemetry } from '../telemetry/telemetry.js';

const MIN_RETRY_MS = 50;
const MAX_RETRY_MS = 1_000;

/**
 * Auto-renewal for every lease of one PgFence: each tick sends one `renew_leases` statement for
 * all leases that are due (or nearly due, so they fall into step and later ticks stay large).
 * A failed renewal is retried on fresh connections until the earliest local deadline of its
 * batch (see renew-attempts.ts); each handle enforces its own deadline whatever happens here.
 * @internal
 */
export class Renewer {
  readonly #store: LeaseStore;
  readonly #onError: (error: unknown) => void;
  readonly #leases = new Set<LeaseHandle>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #stopped = false;

  readonly #renewFraction: number;

  readonly #telemetry: Telemetry;

  constructor(
    store: LeaseStore,
    renewFraction: number,
    onError: (error: unknown) => void,
    telemetry: Telemetry = NO_TELEMETRY,
  ) {
    this.#telemetry = telemetry;
    this.#store = store;
    this.#renewFraction = renewFraction;
    this.#onError = onError;
  }

  add(lease: LeaseHandle): void {
    if (this.#stopped) return;
    this.#leases.add(lease);
    if (lease.renewAt < this.#timerAt) this.#schedule(lease.renewAt);
  }

  remove(lease: LeaseHandle): void {
    this.#leases.delete(lease);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#leases.clear();
  }

  /** A jittered pause before renewing `lease` again after a failed or busy attempt. */
  #retryDelay(lease: LeaseHandle): number {
    const backoff = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, lease.ttlMs / 20));
    return backoff * (0.5 + Math.random());
  }

  #schedule(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    if (at === Infinity) return;
    // A far-off renewal (a TTL of weeks) wakes early; #tick then finds nothing due and re-arms.
    const delayMs = Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - performance.now())));
    this.#timer = setTimeout(() => this.#tick(), delayMs);
    this.#timer.unref();
  }

  #tick(): void {
    this.#timerAt = Infinity;
    const now = performance.now();
    const due: LeaseHandle[] = [];
    let next = Infinity;
    for (const lease of this.#leases) {
      if (!lease.held) {
        this.#leases.delete(lease);
        continue;
      }
      // Half a renewal interval early is still early enough to be useful, and lets leases taken
      // at different moments share a statement from then on.
      const slack = (lease.ttlMs * this.#renewFraction) / 2;
      if (lease.renewAt - slack <= now) due.push(lease);
      else next = Math.min(next, lease.renewAt);
    }
    // Failures of the statement go to onError inside; a rejection here would be a bug, reported
    // rather than left to crash the process (the leases' own deadlines still end them).
    if (due.length > 0) this.#renew(due).catch(this.#onError);
    if (next < Infinity) this.#schedule(next);
  }

  async #renew(batch: LeaseHandle[]): Promise<void> {
    for (const lease of batch) lease.renewAt = Infinity;
    let earliestDeadline = Infinity;
    let shortestTtl = Infinity;
    for (const lease of batch) {
      earliestDeadline = Math.min(earliestDeadline, lease.deadline);
      shortestTtl = Math.min(shortestTtl, lease.ttlMs);
    }
    const terms = batch.map((l) => ({
      key: l.key,
      token: l.token,
      ttlMs: l.ttlMs,
      holder: l.holder,
    }));
    // Retried on fresh connections until the earliest deadline of the batch: past it, that
    // lease is lost anyway (its handle says so on its own), and the others are due again.
    const result = await this.#telemetry.renewal(batch.length, () =>
      renewUntil(this.#store, terms, earliestDeadline, {
        ttlMs: shortestTtl,
        skipLocked: true,
        onError: this.#onError,
      }),
    );
    const now = performance.now();
    if (result === null) {
      for (const lease of batch) {
        if (lease.held) lease.renewAt = now + this.#retryDelay(lease);
      }
    } else {
      batch.forEach((lease, i) => {
        const term = termId(lease.key, lease.token);
        const expiresAt = result.expiresAt.get(term);
        if (expiresAt) lease.confirm(result.sentAt, terms[i]!.ttlMs, expiresAt);
        else if (result.busy.has(term)) {
          // Its row is locked (a guarded write of this lease in progress): try again soon.
          lease.renewAt = now + this.#retryDelay(lease);
        } else {
          lease.lose('a renewal found it gone (it expired or was taken over)', { rowGone: true });
        }
      });
    }
    if (this.#stopped) return;
    for (const lease of batch) {
      if (lease.held && this.#leases.has(lease) && lease.renewAt < this.#timerAt) {
        this.#schedule(lease.renewAt);
      }
    }
  }
}
