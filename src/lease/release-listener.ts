import type pg from 'pg';
import type { Database } from '../db/database.js';
import { endWithin } from '../db/connection.js';
import { handoffChannel, releasedChannel } from '../db/identifiers.js';
import { settleWithin } from '../util/timers.js';

/** A waiter's interest in one key's release notifications. @internal */
export interface ReleaseSubscription {
  /** Forget notifications seen so far (call just before an attempt). */
  reset(): void;
  /** Resolves on the next notification for the key after the last reset (or at once if one came). */
  next(): Promise<void>;
  /**
   * The waiter's place in the key's queue, or null: a release addressed to another place does
   * not wake it (that waiter is ahead of it, and is granted first).
   */
  setWaiter(waiter: bigint | null): void;
  close(): void;
}

interface Subscriber {
  notified: boolean;
  wake: (() => void) | undefined;
  waiter: bigint | null;
}

const MAX_BACKOFF_MS = 5_000;
const CLOSE_TIMEOUT_MS = 2_000;

/**
 * One LISTEN connection per PgFence, shared by every lease waiter. `release_leases` sends the
 * key of each released lease on `<schema>.released`, and the matching waiters are woken at
 * once; or, when the head of the key's queue is a plain exclusive waiter, `<id>:<key>` on
 * `<schema>.handoff`, which wakes that waiter only (and those not in the queue).
 * The connection opens when the first waiter needs it and reconnects (with backoff) while
 * waiters remain; a reconnect wakes every waiter, since notifications may have been missed.
 * @internal
 */
export class ReleaseListener {
  readonly #db: Database;
  readonly #applicationName: string;
  readonly #onError: (error: unknown) => void;
  readonly #subscribers = new Map<string, Set<Subscriber>>();
  /** Woken by any release, whatever its key (claimers: a released task may match their query). */
  readonly #anyRelease = new Set<Subscriber>();
  /** Other channels (a claimer's wakeChannel): LISTENed to on this same connection. */
  readonly #channels = new Map<string, Set<Subscriber>>();
  /** The channels the current connection LISTENs to. */
  readonly #listening = new Set<string>();
  readonly #pendingListens = new Map<string, Promise<void>>();
  #client: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #backoffMs = 0;
  #closed = false;

  constructor(db: Database, applicationName: string, onError: (error: unknown) => void) {
    this.#db = db;
    this.#applicationName = applicationName;
    this.#onError = onError;
  }

  /** True while notifications are being received. */
  get ready(): boolean {
    return this.#client !== undefined;
  }

  /** Resolves once listening, or once this connection attempt failed (waiters then poll). */
  whenReady(): Promise<void> {
    if (this.#closed || this.#client) return Promise.resolve();
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  subscribe(key: string): ReleaseSubscription {
    const subscriber: Subscriber = { notified: false, wake: undefined, waiter: null };
    let set = this.#subscribers.get(key);
    if (!set) {
      set = new Set();
      this.#subscribers.set(key, set);
    }
    set.add(subscriber);
    // Never rejects (a failed connect goes to onError and the waiters poll): start it, no wait.
    void this.whenReady();
    return handle(subscriber, () => {
      const current = this.#subscribers.get(key);
      current?.delete(subscriber);
      if (current?.size === 0) this.#subscribers.delete(key);
    });
  }

  /** Woken by the release of any key. */
  subscribeAnyRelease(): ReleaseSubscription {
    const subscriber: Subscriber = { notified: false, wake: undefined, waiter: null };
    this.#anyRelease.add(subscriber);
    void this.whenReady(); // never rejects, as above
    return handle(subscriber, () => this.#anyRelease.delete(subscriber));
  }

  /**
   * Woken by every notification on `channel` (the exact name, as pg_notify takes it). The
   * channel stays LISTENed to on this connection once asked for: a claimer's wake channel is
   * typically one name for the life of the process.
   */
  subscribeChannel(channel: string): ReleaseSubscription {
    const subscriber: Subscriber = { notified: false, wake: undefined, waiter: null };
    let set = this.#channels.get(channel);
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(subscriber);
    void this.whenListening(channel); // never rejects: a failed LISTEN is a lost connection
    return handle(subscriber, () => set.delete(subscriber));
  }

  /** True while notifications on `channel` are being received. */
  listensTo(channel: string): boolean {
    return this.#client !== undefined && this.#listening.has(channel);
  }

  /** Resolves once `channel` is LISTENed to, or once that attempt failed (waiters then poll). */
  whenListening(channel: string): Promise<void> {
    const client = this.#client;
    if (this.#closed || this.listensTo(channel)) return Promise.resolve();
    if (!client) return this.whenReady();
    let pending = this.#pendingListens.get(channel);
    if (!pending) {
      pending = this.#listen(client, channel).finally(() => this.#pendingListens.delete(channel));
      this.#pendingListens.set(channel, pending);
    }
    return pending;
  }

  async close(): Promise<void> {
    this.#closed = true;
    // A connect still on its way ends itself once it sees #closed; close() does not wait for
    // one that hangs (a stalled network) longer than it would wait for a polite goodbye.
    if (this.#connecting) await settleWithin(this.#connecting, CLOSE_TIMEOUT_MS);
    const client = this.#client;
    this.#client = undefined;
    this.#wakeAll();
    if (client) await endWithin(client, CLOSE_TIMEOUT_MS);
  }

  async #connect(): Promise<void> {
    if (this.#backoffMs > 0) {
      // unref: a reconnect pending after close() must not keep the process alive.
      await new Promise((r) => setTimeout(r, this.#backoffMs * (0.5 + Math.random() / 2)).unref());
    }
    if (this.#closed) return;
    let client: pg.Client | undefined;
    try {
      client = await this.#db.connectDedicated(this.#applicationName);
      client.on('error', (error) => this.#lost(client!, error));
      client.on('end', () => this.#lost(client!, undefined));
      client.on('notification', (message) => {
        if (message.channel === releasedChannel(this.#db.schema)) {
          if (message.payload) this.#wake(message.payload, null);
          wakeAll(this.#anyRelease);
        } else if (message.channel === handoffChannel(this.#db.schema)) {
          const addressed = parseHandoff(message.payload);
          if (addressed) this.#wake(addressed.key, addressed.waiter);
          wakeAll(this.#anyRelease);
        } else {
          wakeAll(this.#channels.get(message.channel));
        }
      });
      const listen = (channel: string) =>
        client!.query({
          text: `LISTEN ${channel}`,
          query_timeout: this.#db.statementTimeoutMs,
        } as pg.QueryConfig);
      await listen(`"${releasedChannel(this.#db.schema)}"`);
      await listen(`"${handoffChannel(this.#db.schema)}"`);
      this.#listening.clear();
      for (const channel of this.#channels.keys()) {
        await listen(quoteChannel(channel));
        this.#listening.add(channel);
      }
      if (this.#closed) {
        await client.end().catch(() => {});
        return;
      }
      this.#client = client;
      this.#backoffMs = 0;
    } catch (error) {
      this.#backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(100, this.#backoffMs * 2));
      this.#onError(error);
      client?.end().catch(() => {});
    }
  }

  /** LISTENs to one more channel on the open connection (a failure is a lost connection). */
  async #listen(client: pg.Client, channel: string): Promise<void> {
    try {
      await client.query({
        text: `LISTEN ${quoteChannel(channel)}`,
        query_timeout: this.#db.statementTimeoutMs,
      } as pg.QueryConfig);
      if (this.#client === client) this.#listening.add(channel);
    } catch (error) {
      this.#lost(client, error);
    }
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    if (error !== undefined) this.#onError(error);
    client.end().catch(() => {});
    this.#backoffMs = Math.max(100, this.#backoffMs);
    // Notifications sent while we were away are gone: every waiter should look again.
    this.#wakeAll();
    const wanted = this.#subscribers.size + this.#anyRelease.size + this.#channels.size > 0;
    // Reconnect in the background; whenReady never rejects.
    if (!this.#closed && wanted) void this.whenReady();
  }

  /** Wakes the waiters of `key`; with `waiter`, only that one and those not in the queue. */
  #wake(key: string, waiter: bigint | null): void {
    for (const subscriber of this.#subscribers.get(key) ?? []) {
      if (waiter !== null && subscriber.waiter !== null && subscriber.waiter !== waiter) continue;
      subscriber.notified = true;
      const wake = subscriber.wake;
      subscriber.wake = undefined;
      if (wake) {
        subscriber.notified = false;
        wake();
      }
    }
  }

  #wakeAll(): void {
    for (const key of [...this.#subscribers.keys()]) this.#wake(key, null);
    wakeAll(this.#anyRelease);
    for (const set of this.#channels.values()) wakeAll(set);
  }
}

/** `<waiter id>:<key>` as the handoff channel carries it; undefined if malformed. */
export function parseHandoff(
  payload: string | undefined,
): { waiter: bigint; key: string } | undefined {
  const colon = payload?.indexOf(':') ?? -1;
  if (payload === undefined || colon < 1) return undefined;
  const id = payload.slice(0, colon);
  if (!/^[0-9]+$/.test(id)) return undefined;
  return { waiter: BigInt(id), key: payload.slice(colon + 1) };
}

/** A channel name as an identifier for LISTEN: double-quoted, inner quotes doubled. */
function quoteChannel(channel: string): string {
  return `"${channel.replaceAll('"', '""')}"`;
}

function wakeAll(subscribers: Set<Subscriber> | undefined): void {
  for (const subscriber of subscribers ?? []) {
    subscriber.notified = true;
    const wake = subscriber.wake;
    subscriber.wake = undefined;
    if (wake) {
      subscriber.notified = false;
      wake();
    }
  }
}

/** The subscription a waiter holds; `forget` removes it from whatever set it is in. */
function handle(subscriber: Subscriber, forget: () => void): ReleaseSubscription {
  return {
    reset: () => {
      // A wake-up from the previous sleep that nobody awaits any more (its timer won) must not
      // swallow the next notification.
      subscriber.notified = false;
      subscriber.wake = undefined;
    },
    next: () =>
      new Promise<void>((resolve) => {
        if (subscriber.notified) {
          subscriber.notified = false;
          resolve();
        } else {
          subscriber.wake = resolve;
        }
      }),
    setWaiter: (waiter) => {
      subscriber.waiter = waiter;
    },
    close: () => {
      forget();
      subscriber.wake?.();
    },
  };
}
