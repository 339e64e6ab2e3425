import type { LockMode } from './options.js';
import type { MigrateOptions, MigrationRun } from './schema/migrate.js';

/** Options of `lease` and `withLease`. */
export interface LeaseOptions {
  /** Time-to-live in milliseconds. Default: the `PgFence`'s `ttlMs` (30 s). */
  ttlMs?: number;
  /** How long to wait for the key. Default: the `PgFence`'s `waitMs` (30 s); `Infinity` waits for ever. */
  waitMs?: number;
  /** Renew the lease in the background until it is released. Default off (on for `withLease`). */
  autoRenew?: boolean;
  /** Abort the wait; the wait then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Stored with the lease (jsonb), visible to `inspect`. */
  metadata?: Record<string, unknown>;
  /**
   * `'exclusive'` (default): the only holder of the key. `'shared'`: holders overlap each other,
   * never an exclusive one; each has its own token. A waiting exclusive caller is not passed by
   * shared callers that arrive after it, in any process.
   */
  mode?: LockMode;
  /**
   * Makes the key a semaphore: at most `permits` holders at once, each a lease with its own
   * token, renewal and signal. Every caller of the key must pass the same count (another one
   * gets a `PermitsMismatchError`). Not combined with `mode: 'shared'`.
   */
  permits?: number;
}

/** Options of `leaseAll`: one TTL, wait and mode for every key of the set. */
export type LeaseAllOptions = Omit<LeaseOptions, 'permits'>;

/** Options of `campaign`. */
export interface CampaignOptions {
  /** What the leader announces (an address, a name), returned by `leader()` and `observe()`. */
  value?: string;
  /** The term's time-to-live; it is renewed in the background. Default: the `PgFence`'s `ttlMs`. */
  ttlMs?: number;
  /** Stop campaigning (the call rejects with the signal's reason); does not end a term won. */
  signal?: AbortSignal;
  /** How long to campaign before giving up with `LockTimeoutError`. Default: for ever. */
  waitMs?: number;
}

/** Who leads an election, by the database clock. */
export interface LeaderInfo {
  /** What the leader announced with `campaign({ value })`; null if it gave none. */
  value: string | null;
  /** The leader's `PgFence` owner. */
  owner: string;
  /** The term's fencing token: a later term has a larger one. */
  token: bigint;
  /**
   * When the term ends unless renewed, by the database clock (from `observe`, for a term that
   * had ended before it was read: the expiry it was granted with).
   */
  expiresAt: Date;
}

/** Options of `observe`. */
export interface ObserveOptions {
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/** Options of `tryLease`: like `LeaseOptions`, without waiting. */
export type TryLeaseOptions = Omit<LeaseOptions, 'waitMs' | 'signal'>;

/** A lease: a row in `<schema>.leases` held until it is released or its TTL passes unrenewed. */
export interface Lease extends AsyncDisposable {
  /** The key this lease holds. */
  readonly key: string;
  /** The fencing token of this term: larger than every token issued before it. */
  readonly token: bigint;
  /** The owner of the `PgFence` that took it. */
  readonly owner: string;
  /** When the lease expires by the database clock, as of the last acquire or renewal. */
  readonly expiresAt: Date;
  /** Aborts with a `LockLostError` when the lease is lost, before the holder could wrongly trust it. */
  readonly signal: AbortSignal;
  /**
   * Extends the lease by `ttlMs` (default: its own TTL) from now, by the database clock, and
   * moves `expiresAt`. Throws `LockLostError` if the lease is gone (expired or taken over), and
   * `AlreadyReleasedError` after `release()`.
   *
   * @example
   * ```ts
   * const lease = await fence.lease('import:42', { ttlMs: 30_000 });
   * for (const chunk of chunks) {
   *   await importChunk(chunk, { fencingToken: lease.token });
   *   await lease.extend(); // another 30 s from now
   * }
   * await lease.release();
   * ```
   */
  extend(ttlMs?: number): Promise<void>;
  /**
   * Releases the lease: `true` if this call released it, `false` if it had already been lost
   * (expired or taken over: nothing of another holder's is touched). A second `release()` throws
   * `AlreadyReleasedError`.
   *
   * @example
   * ```ts
   * const lease = await fence.lease('nightly-report');
   * try {
   *   await writeReport({ fencingToken: lease.token, signal: lease.signal });
   * } finally {
   *   if (!(await lease.release())) console.warn('the lease ran out before the report was done');
   * }
   * ```
   */
  release(): Promise<boolean>;
  /**
   * Releases the lease unless it was released already, so `await using` ends it with its
   * scope (a second call does nothing).
   *
   * @example
   * ```ts
   * {
   *   await using lease = await fence.lease('rebuild-index', { ttlMs: 60_000, autoRenew: true });
   *   await rebuildIndex({ signal: lease.signal });
   * } // released here, also when rebuildIndex throws
   * ```
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `lock`, `withLock` and `lockAll`. */
export interface LockOptions {
  /** How long to wait. Default: the `PgFence`'s `waitMs` (30 s); `Infinity` waits for ever. */
  waitMs?: number;
  /** Abort the wait; the wait then rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * `shared` holders overlap each other, never an exclusive one; a waiting exclusive caller is
   * not starved (shared callers that arrive after it wait behind it). Default `exclusive`.
   */
  mode?: LockMode;
}

/** Options of `tryLock`. */
export interface TryLockOptions {
  /** `shared` or `exclusive` (the default), as for `lock`. */
  mode?: LockMode;
}

/** A session advisory lock: no disk write, gone when released or when its connection dies. */
export interface AdvisoryLock extends AsyncDisposable {
  /** The key as given: a string, or the raw 64-bit lock id. */
  readonly key: string | bigint;
  /** How it is held: `shared` or `exclusive`. */
  readonly mode: LockMode;
  /** Aborts with a `LockLostError` when the lock's session dies. */
  readonly signal: AbortSignal;
  /**
   * Releases the lock: `true` if this call released it, `false` if it had already been lost
   * (its session died). A second `release()` throws `AlreadyReleasedError`.
   *
   * @example
   * ```ts
   * const lock = await fence.lock('invoice:42', { waitMs: 5_000 });
   * try {
   *   await sendInvoice(42, { signal: lock.signal });
   * } finally {
   *   await lock.release();
   * }
   * ```
   */
  release(): Promise<boolean>;
  /**
   * Releases the lock unless it was released already, so `await using` ends it with its scope
   * (a second call does nothing).
   *
   * @example
   * ```ts
   * {
   *   await using lock = await fence.lock('cache:rebuild');
   *   await rebuildCache({ signal: lock.signal });
   * } // released here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `xactLock`. */
export interface XactLockOptions {
  /** How long to wait. Default: the `PgFence`'s `waitMs`; `0` tries once. */
  waitMs?: number;
}

/** Options of `claim`: either `from` (a query over the caller's table) or `keys`. */
export interface ClaimOptions {
  /** A Kysely query or `sql` fragment yielding a `key` column; its rows are locked SKIP LOCKED. */
  from?: ClaimSource;
  /** Keys to take free ones from, for work that has no table. */
  keys?: readonly string[];
  /** How many leases at most. */
  limit: number;
  /** Time-to-live of each lease. Default: the `PgFence`'s `ttlMs`. */
  ttlMs?: number;
  /** Renew the claimed leases in the background. Default off. */
  autoRenew?: boolean;
  /**
   * Wait up to this long for at least one task. Default 0: one attempt, returns at once.
   * While waiting, claim never returns empty because matching tasks were busy for an instant.
   */
  waitMs?: number;
  /** A NOTIFY channel that announces new tasks (e.g. a trigger's `pg_notify`); needs `waitMs`. */
  wakeChannel?: string;
  /** Ends a wait: the claim then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of `reap`. */
export interface ReapOptions {
  /** Rows deleted per statement. Default 1,000. */
  batchSize?: number;
}

/** What one reaper pass did. */
export interface ReapPass {
  deleted: number;
  durationMs: number;
}

/** Options of `startReaper`. */
export interface ReaperOptions extends ReapOptions {
  /** Time between passes, jittered. Default 60,000 ms. */
  intervalMs?: number;
  /** Called after each pass, e.g. to feed metrics. */
  onPass?: (pass: ReapPass) => void;
  /** Called when a pass fails; the reaper carries on. */
  onError?: (error: unknown) => void;
}

/** A running reaper. */
export interface Reaper {
  /**
   * Stops the reaper; resolves once the pass in flight (if any) has finished. No pass starts
   * after it is called.
   *
   * @example
   * ```ts
   * const reaper = fence.startReaper({ intervalMs: 60_000 });
   * process.once('SIGTERM', () => {
   *   void reaper.stop().then(() => fence.close());
   * });
   * ```
   */
  stop(): Promise<void>;
}

/** Options of `inspect`. */
export interface InspectOptions {
  /** Only keys starting with this prefix. */
  prefix?: string;
}

/** One holder of a key, as `inspect` reports it. */
export interface LeaseHolderInfo {
  owner: string;
  token: bigint;
  acquiredAt: Date;
  expiresAt: Date;
  /** Milliseconds since `acquiredAt`, by the database clock when inspected. */
  heldMs: number;
  /** Milliseconds until `expiresAt`, by the database clock when inspected. */
  expiresInMs: number;
  metadata: unknown;
}

/** A caller waiting in a key's queue in the database, as `inspect` reports it. */
export interface LeaseWaiterInfo {
  owner: string;
  /** What it asks for: `semaphore` when it asks for a permit. */
  mode: 'exclusive' | 'shared' | 'semaphore';
  /** The permit count it asks with, for a semaphore; null otherwise. */
  permits: number | null;
  /** When it took its place in the queue, by the database clock. */
  waitingSince: Date;
  /** Milliseconds since `waitingSince`, by the database clock when inspected. */
  waitingMs: number;
}

/** A live lease, as `inspect` reports it. */
export interface LeaseInfo {
  key: string;
  /** `exclusive` for a plain lease, `shared` for shared holders, `semaphore` for permits. */
  mode: 'exclusive' | 'shared' | 'semaphore';
  /** A semaphore's permit count; null otherwise. */
  permits: number | null;
  /**
   * The holder (for a shared or semaphore key: the earliest of its holders; each is in `holders`).
   */
  owner: string;
  token: bigint;
  acquiredAt: Date;
  expiresAt: Date;
  heldMs: number;
  expiresInMs: number;
  metadata: unknown;
  /** Every live holder of the key (one for a plain lease). */
  holders: LeaseHolderInfo[];
  /** Callers waiting for the key in the database queue, first in line first. */
  waiters: LeaseWaiterInfo[];
}

/** An advisory lock held or awaited in this database, as `inspect` reports it. */
export interface AdvisoryLockInfo {
  /** The key, when this process took it (hashes cannot be reversed); otherwise null. */
  key: string | bigint | null;
  /** The 64-bit advisory lock id. */
  lockId: bigint;
  /** `shared` for `pg_advisory_lock_shared` and its kin, otherwise `exclusive`. */
  mode: 'exclusive' | 'shared';
  pid: number;
  applicationName: string | null;
  granted: boolean;
  /**
   * When this backend began waiting for the lock, by the database clock; null once granted.
   * PostgreSQL does not record when an advisory lock was granted, so a holder has no age.
   */
  waitingSince: Date | null;
  /** Milliseconds since `waitingSince`, by the database clock when inspected; null once granted. */
  waitingMs: number | null;
}

/** Everything `inspect` reports. */
export interface Inspection {
  /** When the advisory locks were read, by the database clock. */
  at: Date;
  leases: LeaseInfo[];
  advisory: AdvisoryLockInfo[];
}

/** The façade `createPgFence` returns. */
export interface PgFence extends AsyncDisposable {
  /** The schema pgfence's table, sequence and functions live in (`pgfence` by default). */
  readonly schema: string;
  /** Who holds this instance's leases (`host:pid:random` by default), as `inspect` shows it. */
  readonly owner: string;

  /**
   * Creates or updates pgfence's schema (node-pg-migrate; idempotent, and safe when several
   * processes run it at once). Returns the migrations this call applied (none when up to date).
   *
   * @example
   * ```ts
   * const fence = createPgFence({ connectionString: 'postgres://app@db.internal/app' });
   * const applied = await fence.migrate();
   * console.log(applied.map((m) => m.name)); // [] once the schema is up to date
   * ```
   */
  migrate(options?: MigrateOptions): Promise<MigrationRun[]>;

  /**
   * Takes a session advisory lock, waiting up to `waitMs` (default 30 s; `Infinity` for ever),
   * and throws `LockTimeoutError` if it is still held by then. A `bigint` key is the raw
   * `pg_advisory_lock` id, for interop with SQL that takes the same lock.
   *
   * @example
   * ```ts
   * const lock = await fence.lock('invoice:42', { waitMs: 5_000 });
   * try {
   *   await sendInvoice(42, { signal: lock.signal }); // aborts if the lock's session dies
   * } finally {
   *   await lock.release();
   * }
   * ```
   */
  lock(key: string | bigint, options?: LockOptions): Promise<AdvisoryLock>;
  /**
   * Takes a session advisory lock if it is free now, without waiting; `null` if it is held.
   *
   * @example
   * ```ts
   * const lock = await fence.tryLock('cron:cleanup');
   * if (lock === null) return; // another process is on it
   * try {
   *   await cleanup({ signal: lock.signal });
   * } finally {
   *   await lock.release();
   * }
   * ```
   */
  tryLock(key: string | bigint, options?: TryLockOptions): Promise<AdvisoryLock | null>;
  /**
   * Runs `fn` while holding a session advisory lock on `key` and releases it afterwards, also
   * when `fn` throws; resolves to what `fn` returns. Waits as `lock` does.
   *
   * @example
   * ```ts
   * const sent = await fence.withLock(
   *   'invoice:42',
   *   async (lock) => sendInvoice(42, { signal: lock.signal }),
   *   { waitMs: 5_000 },
   * );
   * if (!sent) console.warn('invoice 42 was not sent');
   * ```
   */
  withLock<T>(
    key: string | bigint,
    fn: (lock: AdvisoryLock) => Promise<T> | T,
    options?: LockOptions,
  ): Promise<T>;
  /**
   * Every key or none, in the order asked: while it waits the caller holds none of them, and
   * callers asking for overlapping sets in any order never deadlock. Duplicate keys are refused.
   *
   * @example
   * ```ts
   * const locks = await fence.lockAll(['account:1', 'account:2'], { waitMs: 5_000 });
   * try {
   *   await transfer(1, 2, 100);
   * } finally {
   *   await Promise.all(locks.map((lock) => lock.release()));
   * }
   * ```
   */
  lockAll(keys: readonly (string | bigint)[], options?: LockOptions): Promise<AdvisoryLock[]>;
  /**
   * Takes `pg_advisory_xact_lock` on `key` in the caller's transaction (a pg client after
   * `BEGIN`, or a Kysely `Transaction`), waiting up to `waitMs`; the commit or rollback releases
   * it. Works behind a transaction-mode pooler. Outside a transaction it throws
   * `NotInTransactionError`.
   *
   * @example
   * ```ts
   * await db.transaction().execute(async (trx) => {
   *   await fence.xactLock(trx, `account:${id}`, { waitMs: 2_000 });
   *   await trx.updateTable('accounts').set({ balance }).where('id', '=', id).execute();
   * }); // released by the commit (or the rollback)
   * ```
   */
  xactLock(trx: Transaction, key: string | bigint, options?: XactLockOptions): Promise<void>;

  /**
   * Takes a lease on `key` with a fresh fencing token, waiting up to `waitMs` (default 30 s) and
   * throwing `LockTimeoutError` if it is still held by then. Not renewed unless `autoRenew`.
   *
   * @example
   * ```ts
   * const lease = await fence.lease('nightly-report', { ttlMs: 60_000, autoRenew: true });
   * try {
   *   await writeReport({ fencingToken: lease.token, signal: lease.signal });
   * } finally {
   *   await lease.release();
   * }
   * ```
   */
  lease(key: string, options?: LeaseOptions): Promise<Lease>;
  /**
   * Takes a lease on `key` if it is free now, without waiting; `null` if it is held.
   *
   * @example
   * ```ts
   * const lease = await fence.tryLease('sync:crm', { ttlMs: 10_000 });
   * if (lease) {
   *   try {
   *     await syncCrm({ fencingToken: lease.token });
   *   } finally {
   *     await lease.release();
   *   }
   * }
   * ```
   */
  tryLease(key: string, options?: TryLeaseOptions): Promise<Lease | null>;
  /**
   * Runs `fn` under a lease on `key`, renewed in the background (`autoRenew` defaults to on
   * here), and releases it afterwards, also when `fn` throws; resolves to what `fn` returns.
   *
   * @example
   * ```ts
   * await fence.withLease(
   *   'nightly-report',
   *   async (lease) => writeReport({ fencingToken: lease.token, signal: lease.signal }),
   *   { ttlMs: 60_000 },
   * );
   * ```
   */
  withLease<T>(
    key: string,
    fn: (lease: Lease) => Promise<T> | T,
    options?: LeaseOptions,
  ): Promise<T>;

  /**
   * Leases every key or none, in one statement; the leases come in the order asked. While it
   * waits the caller holds none of the keys, and overlapping sets asked in any order never
   * deadlock.
   *
   * @example
   * ```ts
   * const both = await fence.leaseAll(['acct:1', 'acct:2'], { ttlMs: 30_000, waitMs: 5_000 });
   * try {
   *   await transfer(1, 2, 100, { fencingTokens: both.map((lease) => lease.token) });
   * } finally {
   *   await Promise.all(both.map((lease) => lease.release()));
   * }
   * ```
   */
  leaseAll(keys: readonly string[], options?: LeaseAllOptions): Promise<Lease[]>;

  /**
   * Waits until elected: the term is a lease on `name`, auto-renewed; its `token` orders the
   * terms, its `signal` aborts when leadership is lost, and `release()` resigns.
   *
   * @example
   * ```ts
   * const term = await fence.campaign('scheduler', { value: 'host-a:8080', ttlMs: 15_000 });
   * try {
   *   await runScheduler({ signal: term.signal, fencingToken: term.token });
   * } finally {
   *   await term.release(); // resign
   * }
   * ```
   */
  campaign(name: string, options?: CampaignOptions): Promise<Lease>;
  /**
   * The current leader of `name`, or null, by the database clock.
   *
   * @example
   * ```ts
   * const leader = await fence.leader('scheduler');
   * console.log(leader ? `${leader.value} leads (term ${leader.token})` : 'nobody leads');
   * ```
   */
  leader(name: string): Promise<LeaderInfo | null>;
  /**
   * Every term of `name`, in token order, starting with the current leader (or `null`): also a
   * term that began and ended between two reads, from the election's log; `null` when a read
   * finds nobody leading after a term. The iteration ends when `signal` aborts.
   *
   * @example
   * ```ts
   * const stop = new AbortController();
   * for await (const leader of fence.observe('scheduler', { signal: stop.signal })) {
   *   console.log(leader ? `now led by ${leader.value}` : 'no leader');
   * }
   * ```
   */
  observe(name: string, options?: ObserveOptions): AsyncIterable<LeaderInfo | null>;

  /**
   * Takes up to `limit` tasks from the caller's own table (`from`, a query yielding a `key`
   * column, its rows locked `FOR UPDATE SKIP LOCKED`) or free keys of `keys`, and returns a lease
   * for each; nobody else gets a task while its lease lives. With `waitMs` it waits for at least
   * one.
   *
   * @example
   * ```ts
   * import { sql } from 'kysely';
   *
   * const leases = await fence.claim({
   *   from: db
   *     .selectFrom('jobs')
   *     .select(sql<string>`'job:' || id`.as('key'))
   *     .where('state', '=', 'ready')
   *     .orderBy('id'),
   *   limit: 10,
   *   ttlMs: 60_000,
   *   waitMs: 30_000,
   * });
   * console.log(`claimed ${leases.length} jobs`);
   * ```
   */
  claim(options: ClaimOptions): Promise<Lease[]>;
  /**
   * In the caller's transaction (a pg client after BEGIN, or a Kysely Transaction): releases
   * those of `leases` that are still current and returns them; they go when it commits. Outside
   * a transaction it throws `NotInTransactionError`.
   *
   * @example
   * ```ts
   * await db.transaction().execute(async (trx) => {
   *   const current = await fence.xactRelease(trx, leases);
   *   const ids = current.map((lease) => Number(lease.key.slice('job:'.length)));
   *   if (ids.length > 0) {
   *     await trx.updateTable('jobs').set({ state: 'done' }).where('id', 'in', ids).execute();
   *   }
   * });
   * ```
   */
  xactRelease(trx: Transaction, leases: readonly Lease[]): Promise<Lease[]>;
  /**
   * Whether `token` is the live lease of `key` right now, by the database clock. For the
   * instant only: to fence a write, put `<schema>.is_current(key, token)` in its `WHERE`.
   *
   * @example
   * ```ts
   * if (!(await fence.isCurrent(lease.key, lease.token))) {
   *   console.warn('lost the lease; skipping the upload');
   * }
   * ```
   */
  isCurrent(key: string, token: bigint): Promise<boolean>;

  /**
   * One pass of the reaper: deletes expired lease rows (by the database clock) in batches of
   * `batchSize`, and returns how many it deleted.
   *
   * @example
   * ```ts
   * const deleted = await fence.reap({ batchSize: 500 });
   * console.log(`${deleted} expired leases deleted`);
   * ```
   */
  reap(options?: ReapOptions): Promise<number>;
  /**
   * Runs `reap` every `intervalMs` (jittered) until `stop()`; a failed pass goes to `onError`
   * and the reaper carries on.
   *
   * @example
   * ```ts
   * const reaper = fence.startReaper({
   *   intervalMs: 60_000,
   *   onPass: ({ deleted, durationMs }) => console.log(`reaped ${deleted} in ${durationMs} ms`),
   *   onError: (error) => console.error('reaper pass failed', error),
   * });
   * // on shutdown
   * await reaper.stop();
   * ```
   */
  startReaper(options?: ReaperOptions): Reaper;
  /**
   * The live leases (by the database clock) and the advisory locks held through pgfence, with
   * their holders and waiters; `prefix` narrows the keys.
   *
   * @example
   * ```ts
   * const { leases, advisory } = await fence.inspect({ prefix: 'job:' });
   * for (const lease of leases) {
   *   console.log(lease.key, lease.owner, `${lease.expiresInMs} ms left`, lease.waiters.length);
   * }
   * console.log(`${advisory.length} advisory locks`);
   * ```
   */
  inspect(options?: InspectOptions): Promise<Inspection>;

  /**
   * Releases what this instance holds (their signals abort) and ends the connections it opened
   * (never the caller's pool); it returns in bounded time whatever the network does.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => {
   *   void fence.close().then(() => process.exit(0));
   * });
   * ```
   */
  close(): Promise<void>;
  /**
   * `close()`, so that `await using` ends the instance with its scope.
   *
   * @example
   * ```ts
   * await using fence = createPgFence({ connectionString: 'postgres://app@db.internal/app' });
   * await fence.withLock('migrate-data', () => migrateData());
   * // closed here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A connection inside the caller's transaction, as `xactLock` and `xactRelease` take it: a pg
 * client after `BEGIN` (a `pg.PoolClient` or `pg.Client`), or a Kysely `Transaction`.
 */
export type Transaction =
  | { query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> }
  | { executeQuery(query: never): Promise<{ rows: unknown[] }> };

/**
 * What `claim({ from })` takes: a Kysely query (`db.selectFrom('jobs').select('key')…`), a
 * Kysely `sql` fragment, or an already compiled query `{ sql, parameters }` — a SELECT
 * yielding a `key` column.
 */
export type ClaimSource =
  | { compile(): { readonly sql: string; readonly parameters: readonly unknown[] } }
  | { readonly isRawBuilder: true; toOperationNode(): unknown }
  | { readonly sql: string; readonly parameters: readonly unknown[] };
