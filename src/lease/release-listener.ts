import type pg from 'pg';
import type { Database } from '../db/database.js';
import { releasedChannel } from '../db/identifiers.js';

/** A waiter's interest in one key's release notifications. @internal */
export interface ReleaseSubscription {
  /** Forget notifications seen so far (call just before an attempt). */
  reset(): void;
  /** Resolves on the next notification for the key after the last reset (or at once if one came). */
  next(): Promise<void>;
  close(): void;
}

interface Subscriber {
  notified: boolean;
  wake: (() => void) | undefined;
}

const MAX_BACKOFF_MS = 5_000;
const CLOSE_TIMEOUT_MS = 2_000;

/** Ends a client politely, or destroys its socket if the server does not answer in time. */
async function endWithin(client: pg.Client, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      (
        client as unknown as { connection?: { stream?: { destroy(): void } } }
      ).connection?.stream?.destroy();
      resolve();
    }, timeoutMs);
  });
  await Promise.race([client.end().catch(() => {}), timeout]);
  clearTimeout(timer);
}

/** Waits for `promise` to settle, but no longer than `timeoutMs`. */
async function settleWithin(promise: Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([promise.catch(() => {}), timeout]);
  clearTimeout(timer);
}

/**
 * One LISTEN connection per PgFence, shared by every lease waiter. `release_leases` sends the
 * key of each released lease on `<schema>.released`; the matching waiters are woken at once.
 * The connection opens when the first waiter needs it and reconnects (with backoff) while
 * waiters remain; a reconnect wakes every waiter, since notifications may have been missed.
 * @internal
 */
export class ReleaseListener {
  readonly #db: Database;
  readonly #applicationName: string;
  readonly #onError: (error: unknown) => void;
  readonly #subscribers = new Map<string, Set<Subscriber>>();
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
    const subscriber: Subscriber = { notified: false, wake: undefined };
    let set = this.#subscribers.get(key);
    if (!set) {
      set = new Set();
      this.#subscribers.set(key, set);
    }
    set.add(subscriber);
    void this.whenReady();
    return {
      reset: () => {
        subscriber.notified = false;
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
      close: () => {
        const current = this.#subscribers.get(key);
        current?.delete(subscriber);
        if (current?.size === 0) this.#subscribers.delete(key);
        subscriber.wake?.();
      },
    };
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
        if (message.channel === releasedChannel(this.#db.schema) && message.payload) {
          this.#wake(message.payload);
        }
      });
      await client.query({
        text: `LISTEN "${releasedChannel(this.#db.schema)}"`,
        query_timeout: this.#db.statementTimeoutMs,
      } as pg.QueryConfig);
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

  #lost(client: pg.Client, error: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    if (error !== undefined) this.#onError(error);
    client.end().catch(() => {});
    this.#backoffMs = Math.max(100, this.#backoffMs);
    // Notifications sent while we were away are gone: every waiter should look again.
    this.#wakeAll();
    if (!this.#closed && this.#subscribers.size > 0) void this.whenReady();
  }

  #wake(key: string): void {
    for (const subscriber of this.#subscribers.get(key) ?? []) {
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
    for (const key of [...this.#subscribers.keys()]) this.#wake(key);
  }
}
