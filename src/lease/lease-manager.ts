import { setMaxListeners } from 'node:events';
import type { Database } from '../db/database.js';
import { ClosedError, InvalidArgumentError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { Lease, LeaseAllOptions, LeaseOptions, TryLeaseOptions } from '../types.js';
import type { AcquiredLease, AdoptOptions } from './acquired.js';
import { acquireWithWait, mismatch, queueTtlMs, waitFor } from './acquire-loop.js';
import { parseKeySet } from './lease-set.js';
import { Cancellation } from '../util/cancellation.js';
import { KeyQueue, type KeySlot } from '../util/key-queue.js';
import { LeaseHandle, type LeaseHandleHost } from './lease-handle.js';
import { marginFor, parseLeaseRequest, type LeaseRequest } from './lease-options.js';
import type { AcquireOutcome } from './lease-sql.js';
import { LeaseStore } from './lease-store.js';
import { ReleaseListener, type ReleaseSubscription } from './release-listener.js';
import { Renewer } from './renewer.js';
import { renewUntil } from './renew-attempts.js';
import { NO_TELEMETRY, type Telemetry } from '../telemetry/telemetry.js';

/** How long close() gives the statement that releases every held lease. */
const CLOSE_RELEASE_TIMEOUT_MS = 5_000;

/**
 * Acquires, renews and releases leases for one PgFence. It composes: a per-key in-process queue
 * (same-process callers of one key take turns, in arrival order), the store (coalesced
 * statements), the release listener (one LISTEN connection), the renewer (one statement per
 * tick) and the handles (each enforcing its own local deadline).
 * @internal
 */
export class LeaseManager {
  readonly #options: ResolvedOptions;
  readonly #store: LeaseStore;
  readonly #listener: ReleaseListener;
  readonly #renewer: Renewer;
  readonly #queue = new KeyQueue();
  readonly #held = new Map<LeaseHandle, KeySlot | undefined>();
  readonly #closing = new AbortController();
  readonly #host: LeaseHandleHost;
  readonly #telemetry: Telemetry;

  constructor(db: Database, options: ResolvedOptions, telemetry: Telemetry = NO_TELEMETRY) {
    this.#options = options;
    this.#telemetry = telemetry;
    // Every waiter listens for close(): thousands of them are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#store = new LeaseStore(db, options.owner);
    this.#listener = new ReleaseListener(
      db,
      `${options.applicationName}:listen`.slice(0, 63),
      options.onError,
    );
    this.#renewer = new Renewer(this.#store, options.renewFraction, options.onError, telemetry);
    const store = this.#store;
    this.#host = {
      owner: options.owner,
      renewFraction: options.renewFraction,
      marginFor: (ttlMs) => marginFor(options, ttlMs),
      renewOne: async (key, token, ttlMs, deadline, holder) => {
        let failure: unknown;
        const result = await telemetry.renewal(1, () =>
          renewUntil(store, [{ key, token, ttlMs, holder }], deadline, {
            ttlMs,
            skipLocked: false,
            onError: (error) => (failure = error),
          }),
        );
        // No answer by the deadline: the term is lost either way; say why it could not be kept.
        if (result === null) throw failure ?? new Error('no renewal answer before the deadline');
        const expiresAt = [...result.expiresAt.values()][0];
        return expiresAt ? { sentAt: result.sentAt, expiresAt } : null;
      },
      release: (key, token, holder) =>
        telemetry.release('lease', key, token, () => store.release(key, token, holder)),
      lost: (reason) => telemetry.lost('lease', reason),
      onError: options.onError,
      ended: (handle) => this.#ended(handle),
    };
  }

  /** Waits (up to `waitMs`) for `key` and returns its lease. */
  async lease(key: string, options?: LeaseOptions): Promise<Lease> {
    const request = parseLeaseRequest(key, options, this.#options, {
      waits: true,
      autoRenew: false,
    });
    return this.#leaseWaiting(request);
  }

  /** One attempt: the lease, or null if someone (in this process or another) holds the key. */
  async tryLease(key: string, options?: TryLeaseOptions): Promise<Lease | null> {
    const request = parseLeaseRequest(key, options, this.#options, {
      waits: false,
      autoRenew: false,
    });
    if (!isPlain(request)) {
      this.#assertOpen();
      const outcome = await this.#store.acquireOne(request, null, null);
      const error = mismatch(request, outcome);
      if (error) throw error;
      return outcome.acquired ? this.#wrap(outcome, request, undefined) : null;
    }
    const slot = this.#queue.tryEnter(request.key);
    if (!slot) return null;
    try {
      this.#assertOpen();
      const outcome = await this.#store.acquire(request);
      if (!outcome.acquired) {
        slot.release();
        return null;
      }
      return this.#wrap(outcome, request, slot);
    } catch (error) {
      slot.release();
      throw error;
    }
  }

  /** Runs `fn` holding `key` (auto-renewed unless `autoRenew: false`), then releases it. */
  async withLease<T>(
    key: string,
    fn: (lease: Lease) => Promise<T> | T,
    options?: LeaseOptions,
  ): Promise<T> {
    if (typeof fn !== 'function') {
      throw new InvalidArgumentError('withLease needs a function to run while holding the lease');
    }
    const request = parseLeaseRequest(key, options, this.#options, {
      waits: true,
      autoRenew: true,
    });
    const lease = await this.#leaseWaiting(request);
    let result: T;
    try {
      result = await fn(lease);
    } catch (error) {
      try {
        await lease[Symbol.asyncDispose]();
      } catch (releaseError) {
        // fn's error is the one the caller needs; the release failure goes to onError.
        this.#options.onError(releaseError);
      }
      throw error;
    }
    await lease[Symbol.asyncDispose]();
    return result;
  }

  /**
   * Every key of `keys` or none (guarantee 12): one statement per attempt takes them all, and
   * nothing is held between attempts, so a caller never holds part of its set, also while it
   * waits. A set that waits stands in the queue of each key that keeps it waiting (migration
   * 1764130000010), so later shared callers queue behind an exclusive set (guarantee 11). The
   * leases come in the order asked.
   */
  async leaseAll(keys: readonly string[], options?: LeaseAllOptions): Promise<Lease[]> {
    const set = parseKeySet(keys);
    const request = parseLeaseRequest(set[0], options, this.#options, {
      waits: true,
      autoRenew: false,
      permits: false,
    });
    this.#assertOpen();
    if (request.signal?.aborted) throw request.signal.reason;
    const cancel = new Cancellation(set.join(', '), request.waitMs, [
      request.signal,
      this.#closing.signal,
    ]);
    try {
      const outcomes = await waitFor<Extract<AcquireOutcome, { acquired: true }>[]>(
        {
          listener: this.#listener,
          pollIntervalMs: this.#options.pollIntervalMs,
          discard: (late) => {
            for (const o of late) this.#giveBack(o.lease.key, o.lease.token, o.lease.holder);
          },
          leaveQueue: (place) => this.#store.leaveQueue(place).catch(() => {}),
          onRetry: this.#options.onError,
        },
        set,
        request.waitMs,
        cancel,
        async (_waiter, _round, places) => {
          // A set that waits stands in every key's queue (a try takes no place).
          const queueTtl = request.waitMs > 0 ? queueTtlMs(this.#options.pollIntervalMs) : null;
          const answers = await this.#store.acquireSet(set, request, places, queueTtl);
          const granted: Extract<AcquireOutcome, { acquired: true }>[] = [];
          let retryInMs = Infinity;
          for (const answer of answers) {
            const error = answer.acquired ? undefined : mismatch({ key: answer.key }, answer);
            if (error) throw error;
            if (answer.acquired) {
              granted.push(
                request.mode === 'shared'
                  ? { ...answer, lease: { ...answer.lease, holder: true } }
                  : answer,
              );
            } else if (answer.holderExpiresInMs !== null) {
              retryInMs = Math.min(retryInMs, answer.holderExpiresInMs);
            } else retryInMs = 0;
          }
          if (granted.length === set.length) return { granted };
          // Its places in the queues of the keys that keep it waiting (null elsewhere).
          const taken = answers.map((answer) => (answer.acquired ? null : (answer.waiter ?? null)));
          return {
            retryInMs,
            waiter: null,
            places: taken.some((id) => id !== null) ? taken : null,
          };
        },
      );
      return outcomes.map((outcome) => this.#wrap(outcome, request, undefined));
    } finally {
      cancel.dispose();
    }
  }

  /**
   * Wraps leases that another statement (claiming) just acquired as handles, tracked, renewed
   * and released like any other lease of this instance.
   */
  adopt(acquired: AcquiredLease[], options: AdoptOptions): Lease[] {
    this.#assertOpen();
    return acquired.map((lease) =>
      this.#track(new LeaseHandle(this.#host, lease, options), undefined),
    );
  }

  /** Wakes on every announcement (release, new term) of `key`; for observers such as elections. */
  subscribe(key: string): ReleaseSubscription {
    return this.#listener.subscribe(key);
  }

  /** The LISTEN connection lease waiters share; claimers wait on it too. */
  get listener(): ReleaseListener {
    return this.#listener;
  }

  /** Aborts when close() begins: every wait ends with a ClosedError. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  /** Stops waiting callers, aborts every held lease's signal, releases them in one statement. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new ClosedError());
    this.#renewer.stop();
    const held = [...this.#held.keys()];
    // Signals first: holders must stop before anyone else can be granted their keys.
    for (const handle of held) handle.closeLost();
    try {
      await this.#store.releaseAll(
        held.map((h) => ({ key: h.key, token: h.token, holder: h.holder })),
        CLOSE_RELEASE_TIMEOUT_MS,
      );
    } catch (error) {
      this.#options.onError(error);
    }
    await this.#listener.close();
  }

  async #leaseWaiting(request: LeaseRequest): Promise<Lease> {
    this.#assertOpen();
    if (request.signal?.aborted) throw request.signal.reason;
    const cancel = new Cancellation(request.key, request.waitMs, [
      request.signal,
      this.#closing.signal,
    ]);
    if (!isPlain(request)) {
      // Shared and semaphore callers overlap by design: no in-process queue, each asks the
      // database (which keeps their order in the key's queue).
      try {
        const outcome = await acquireWithWait(this.#loopDeps(true), request, cancel);
        return this.#wrap(outcome, request, undefined);
      } finally {
        cancel.dispose();
      }
    }
    try {
      const slot = await this.#queue.enter(request.key, cancel);
      try {
        const outcome = await acquireWithWait(this.#loopDeps(false), request, cancel);
        return this.#wrap(outcome, request, slot);
      } catch (error) {
        slot.release();
        throw error;
      }
    } finally {
      cancel.dispose();
    }
  }

  #loopDeps(holder: boolean): Parameters<typeof acquireWithWait>[0] {
    return {
      store: this.#store,
      listener: this.#listener,
      pollIntervalMs: this.#options.pollIntervalMs,
      discard: (late) => this.#giveBack(late.lease.key, late.lease.token, holder),
      onRetry: this.#options.onError,
    };
  }

  #wrap(
    outcome: Extract<AcquireOutcome, { acquired: true }>,
    request: LeaseRequest,
    slot: KeySlot | undefined,
  ): LeaseHandle {
    const lease = isPlain(request) ? outcome.lease : { ...outcome.lease, holder: true };
    const handle = new LeaseHandle(this.#host, lease, {
      ttlMs: request.ttlMs,
      autoRenew: request.autoRenew,
      sentAt: outcome.sentAt,
    });
    return this.#track(handle, slot);
  }

  #track(handle: LeaseHandle, slot: KeySlot | undefined): LeaseHandle {
    if (!handle.held) {
      // Its deadline passed before it could even be handed out (a very slow acquire): the
      // caller gets a handle whose signal is already aborted; the row goes back at once.
      slot?.release();
      this.#giveBack(handle.key, handle.token, handle.holder);
      return handle;
    }
    this.#held.set(handle, slot);
    this.#telemetry.leaseHeld(handle);
    if (handle.autoRenew) this.#renewer.add(handle);
    return handle;
  }

  #ended(handle: LeaseHandle): void {
    this.#renewer.remove(handle);
    this.#telemetry.leaseEnded(handle);
    const slot = this.#held.get(handle);
    this.#held.delete(handle);
    slot?.release();
  }

  /** Releases a term nobody will hold, in the background; a failure goes to onError. */
  #giveBack(key: string, token: bigint, holder = false): void {
    this.#store.release(key, token, holder).catch((error: unknown) => this.#options.onError(error));
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) throw new ClosedError();
  }
}

/** A plain lease: exclusive, not a semaphore (the coalesced, in-process-queued path). */
function isPlain(request: { mode: string; permits: number | null }): boolean {
  return request.mode === 'exclusive' && request.permits === null;
}
