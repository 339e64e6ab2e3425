import { setMaxListeners } from 'node:events';
import type { Database } from '../db/database.js';
import { ClosedError, InvalidArgumentError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { Lease, LeaseOptions, TryLeaseOptions } from '../types.js';
import type { AcquiredLease, AdoptOptions } from './acquired.js';
import { acquireWithWait } from './acquire-loop.js';
import { Cancellation } from './cancellation.js';
import { KeyQueue, type KeySlot } from './key-queue.js';
import { LeaseHandle, type LeaseHandleHost } from './lease-handle.js';
import { marginFor, parseLeaseRequest, type LeaseRequest } from './lease-options.js';
import type { AcquireOutcome } from './lease-sql.js';
import { LeaseStore } from './lease-store.js';
import { ReleaseListener } from './release-listener.js';
import { Renewer } from './renewer.js';
import { renewUntil } from './renew-attempts.js';

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

  constructor(db: Database, options: ResolvedOptions) {
    this.#options = options;
    // Every waiter listens for close(): thousands of them are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#store = new LeaseStore(db, options.owner);
    this.#listener = new ReleaseListener(
      db,
      `${options.applicationName}:listen`.slice(0, 63),
      options.onError,
    );
    this.#renewer = new Renewer(this.#store, options.renewFraction, options.onError);
    const store = this.#store;
    this.#host = {
      owner: options.owner,
      renewFraction: options.renewFraction,
      marginFor: (ttlMs) => marginFor(options, ttlMs),
      renewOne: async (key, token, ttlMs, deadline) => {
        let failure: unknown;
        const result = await renewUntil(store, [{ key, token, ttlMs }], deadline, {
          ttlMs,
          skipLocked: false,
          onError: (error) => (failure = error),
        });
        // No answer by the deadline: the term is lost either way; say why it could not be kept.
        if (result === null) throw failure ?? new Error('no renewal answer before the deadline');
        const expiresAt = [...result.expiresAt.values()][0];
        return expiresAt ? { sentAt: result.sentAt, expiresAt } : null;
      },
      release: (key, token) => store.release(key, token),
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
   * Wraps leases that another statement (claiming) just acquired as handles, tracked, renewed
   * and released like any other lease of this instance.
   */
  adopt(acquired: AcquiredLease[], options: AdoptOptions): Lease[] {
    this.#assertOpen();
    return acquired.map((lease) =>
      this.#track(new LeaseHandle(this.#host, lease, options), undefined),
    );
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
        held.map((h) => ({ key: h.key, token: h.token })),
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
    try {
      const slot = await this.#queue.enter(request.key, cancel);
      try {
        const outcome = await acquireWithWait(
          {
            store: this.#store,
            listener: this.#listener,
            pollIntervalMs: this.#options.pollIntervalMs,
            discard: (late) => this.#giveBack(late.lease.key, late.lease.token),
            onRetry: this.#options.onError,
          },
          request,
          cancel,
        );
        return this.#wrap(outcome, request, slot);
      } catch (error) {
        slot.release();
        throw error;
      }
    } finally {
      cancel.dispose();
    }
  }

  #wrap(
    outcome: Extract<AcquireOutcome, { acquired: true }>,
    request: LeaseRequest,
    slot: KeySlot,
  ): LeaseHandle {
    const handle = new LeaseHandle(this.#host, outcome.lease, {
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
      this.#giveBack(handle.key, handle.token);
      return handle;
    }
    this.#held.set(handle, slot);
    if (handle.autoRenew) this.#renewer.add(handle);
    return handle;
  }

  #ended(handle: LeaseHandle): void {
    this.#renewer.remove(handle);
    const slot = this.#held.get(handle);
    this.#held.delete(handle);
    slot?.release();
  }

  /** Releases a term nobody will hold, in the background; a failure goes to onError. */
  #giveBack(key: string, token: bigint): void {
    this.#store.release(key, token).catch((error: unknown) => this.#options.onError(error));
  }

  #assertOpen(): void {
    if (this.#closing.signal.aborted) throw new ClosedError();
  }
}
