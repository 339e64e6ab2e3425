import { AlreadyReleasedError, LockLostError } from '../errors.js';
import { validateTtl } from '../options.js';
import type { Lease } from '../types.js';
import type { AcquiredLease } from './acquired.js';
import { assertAboveMargin } from './lease-options.js';
import { atDeadline } from '../util/timers.js';
import type { LossReason } from '../telemetry/names.js';

/** What a handle needs from its manager. @internal */
export interface LeaseHandleHost {
  readonly owner: string;
  readonly renewFraction: number;
  /** Margin for a TTL: how long before the database's expiry the holder stops trusting it. */
  marginFor(ttlMs: number): number;
  /**
   * Renews one term, retrying until `deadline` (performance.now()); the new expiry, or null
   * if the term is gone. Rejects when no attempt answered before the deadline.
   */
  renewOne(
    key: string,
    token: bigint,
    ttlMs: number,
    deadline: number,
    holder: boolean,
  ): Promise<{ sentAt: number; expiresAt: Date } | null>;
  release(key: string, token: bigint, holder: boolean): Promise<boolean>;
  /** Errors of background or best-effort work. */
  onError(error: unknown): void;
  /** The handle stopped holding (released or lost): stop renewing it, pass its key on. */
  ended(handle: LeaseHandle): void;
  /** Told why a held lease was lost (for telemetry). */
  lost?(reason: LossReason): void;
}

type State = 'held' | 'lost' | 'released';

/**
 * A lease the process holds. Trust is local and monotonic: the handle holds its key until
 * `deadline = sentAt + ttl − margin` (performance.now(), `sentAt` = when the last successful
 * acquire or renewal was sent). At the deadline the signal aborts with `LockLostError`,
 * whatever a renewal in flight is doing; a renewal that finds the term gone aborts it at once.
 * The database's expiry is always later than the deadline, so the holder has stopped before
 * anyone else can be granted the key.
 * @internal
 */
export class LeaseHandle implements Lease {
  readonly key: string;
  readonly token: bigint;
  readonly owner: string;
  readonly metadata: unknown;
  readonly autoRenew: boolean;
  /** A holder of a shared or semaphore key: renewed and released by its own statements. */
  readonly holder: boolean;
  readonly #host: LeaseHandleHost;
  readonly #controller = new AbortController();
  #state: State = 'held';
  /** The database no longer has this term: releasing it needs no statement. */
  #rowGone = false;
  /** Released by `xactRelease` in a caller's transaction, whose outcome decides the row's fate. */
  #inTransaction = false;
  #ttlMs: number;
  #expiresAt: Date;
  #deadline: number;
  /** Cancels the pending deadline timer. */
  #disarm: (() => void) | undefined;
  /** When the renewer should next renew this lease (performance.now()); Infinity while in flight. */
  renewAt: number;

  constructor(
    host: LeaseHandleHost,
    acquired: AcquiredLease,
    options: { ttlMs: number; autoRenew: boolean; sentAt: number },
  ) {
    this.#host = host;
    this.key = acquired.key;
    this.token = acquired.token;
    this.owner = host.owner;
    this.metadata = acquired.metadata;
    this.holder = acquired.holder === true;
    this.autoRenew = options.autoRenew;
    this.#ttlMs = options.ttlMs;
    this.#expiresAt = acquired.expiresAt;
    this.#deadline = options.sentAt + options.ttlMs - host.marginFor(options.ttlMs);
    this.renewAt = options.sentAt + options.ttlMs * host.renewFraction;
    this.#arm();
  }

  get expiresAt(): Date {
    return this.#expiresAt;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  /** performance.now() after which this handle no longer trusts its lease. */
  get deadline(): number {
    return this.#deadline;
  }

  get held(): boolean {
    return this.#state === 'held';
  }

  /** A renewal sent at `sentAt` with `ttlMs` succeeded; the database now says `expiresAt`. */
  confirm(sentAt: number, ttlMs: number, expiresAt: Date): void {
    if (this.#state !== 'held') return;
    if (performance.now() >= this.#deadline) {
      // The deadline passed while the answer was on its way (or the event loop was busy):
      // trust once withdrawn is not given back.
      this.lose('its local deadline passed before the renewal was confirmed');
      return;
    }
    // Renewals never shorten a lease (the SQL keeps the later expiry), so keep the later deadline.
    this.#deadline = Math.max(this.#deadline, sentAt + ttlMs - this.#host.marginFor(ttlMs));
    if (expiresAt > this.#expiresAt) this.#expiresAt = expiresAt;
    this.renewAt = sentAt + this.#ttlMs * this.#host.renewFraction;
    this.#arm();
  }

  /** The lease is gone (or no longer trusted): abort the signal, stop renewing, pass the key on. */
  lose(
    why: string,
    options: { rowGone?: boolean; cause?: unknown; reason?: LossReason } = {},
  ): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    this.#host.lost?.(options.reason ?? (options.rowGone ? 'gone' : 'deadline'));
    if (options.rowGone) this.#rowGone = true;
    this.#disarm?.();
    this.#controller.abort(
      new LockLostError(this.key, `lease "${this.key}" (token ${this.token}) was lost: ${why}`, {
        cause: options.cause,
      }),
    );
    this.#host.ended(this);
  }

  async extend(ttlMs?: number): Promise<void> {
    const ttl = ttlMs === undefined ? this.#ttlMs : validateTtl(ttlMs);
    assertAboveMargin(ttl, this.#host.marginFor(ttl));
    this.#assertHeld();
    let renewed: { sentAt: number; expiresAt: Date } | null;
    try {
      // No answer by the deadline means lost anyway: waiting longer would help nobody.
      renewed = await this.#host.renewOne(this.key, this.token, ttl, this.#deadline, this.holder);
    } catch (error) {
      this.#assertHeld();
      throw error;
    }
    if (renewed === null) {
      this.lose('the database no longer has this term (it expired or was taken over)', {
        rowGone: true,
      });
      this.#assertHeld();
      return;
    }
    this.#assertHeld();
    this.#ttlMs = ttl;
    this.confirm(renewed.sentAt, ttl, renewed.expiresAt);
    this.#assertHeld();
  }

  async release(): Promise<boolean> {
    // After xactRelease the caller's transaction decides: committed, the row is gone; rolled
    // back, it stays until its TTL (retrying the completion with xactRelease takes it again).
    // Either way this call releases nothing, and a worker's `finally` need not know which.
    if (this.#inTransaction) return false;
    if (this.#state === 'released') throw new AlreadyReleasedError(this.key);
    const wasHeld = this.#state === 'held';
    this.#state = 'released';
    this.#disarm?.();
    if (!wasHeld) {
      // Lost already: our own term may still be in the table (the local deadline comes first),
      // and deleting it frees the key sooner. Scoped to our token, it cannot touch a newer
      // holder; and since the answer is "lost" either way, a failure here is not the caller's.
      if (!this.#rowGone) {
        await this.#host.release(this.key, this.token, this.holder).catch((error: unknown) => {
          this.#host.onError(error);
        });
      }
      return false;
    }
    try {
      return await this.#host.release(this.key, this.token, this.holder);
    } finally {
      this.#host.ended(this);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state !== 'released') await this.release();
  }

  /**
   * `xactRelease` deleted this term in a caller's transaction: stop renewing and trusting it
   * (the holder has handed the work over to that transaction), and report it released. Its
   * signal no longer aborts: nothing is held any more that could be lost.
   */
  releasedInTransaction(): void {
    if (this.#state === 'released' && !this.#inTransaction) return;
    const wasHeld = this.#state === 'held';
    this.#state = 'released';
    this.#inTransaction = true;
    this.#disarm?.();
    if (wasHeld) this.#host.ended(this);
  }

  /** Used by close(): the PgFence releases every term itself, in one statement. */
  closeLost(): void {
    this.lose('the PgFence was closed', { rowGone: true, reason: 'closed' });
  }

  #assertHeld(): void {
    if (this.#state === 'released') throw new AlreadyReleasedError(this.key);
    if (this.#state === 'lost') {
      const reason: unknown = this.#controller.signal.reason;
      throw reason instanceof LockLostError
        ? new LockLostError(this.key, reason.message, { cause: reason.cause })
        : new LockLostError(this.key, `lease "${this.key}" was lost`);
    }
  }

  #arm(): void {
    this.#disarm?.();
    // A deadline further off than one timer can wait (a TTL of weeks) is reached by re-arming.
    this.#disarm = atDeadline(
      this.#deadline,
      () => this.lose('its local deadline passed (no renewal confirmed in time)'),
      { unref: true },
    );
  }
}
