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
  value: string | null;
  owner: string;
  /** The term's fencing token: a later term has a larger one. */
  token: bigint;
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
  readonly key: string;
  /** The fencing token of this term: larger than every token issued before it. */
  readonly token: bigint;
  readonly owner: string;
  /** When the lease expires by the database clock, as of the last acquire or renewal. */
  readonly expiresAt: Date;
  /** Aborts with a `LockLostError` when the lease is lost, before the holder could wrongly trust it. */
  readonly signal: AbortSignal;
  /** Extends the lease by `ttlMs` (default: its own TTL) from now. Throws `LockLostError` if it is gone. */
  extend(ttlMs?: number): Promise<void>;
  /** Releases the lease: `true` if this call released it, `false` if it had already been lost. */
  release(): Promise<boolean>;
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
  readonly key: string | bigint;
  /** How it is held: `shared` or `exclusive`. */
  readonly mode: LockMode;
  /** Aborts with a `LockLostError` when the lock's session dies. */
  readonly signal: AbortSignal;
  /** Releases the lock: `true` if this call released it, `false` if it had already been lost. */
  release(): Promise<boolean>;
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
  /** Stops the reaper; resolves once the pass in flight (if any) has finished. */
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
  metadata: unknown;
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
  metadata: unknown;
  /** Every live holder of the key (one for a plain lease). */
  holders: LeaseHolderInfo[];
  /** Callers waiting for the key in the database queue. */
  waiters: number;
}

/** An advisory lock held through pgfence, as `inspect` reports it. */
export interface AdvisoryLockInfo {
  /** The key, when this process took it (hashes cannot be reversed); otherwise null. */
  key: string | bigint | null;
  /** The 64-bit advisory lock id. */
  lockId: bigint;
  pid: number;
  applicationName: string | null;
  granted: boolean;
}

/** Everything `inspect` reports. */
export interface Inspection {
  leases: LeaseInfo[];
  advisory: AdvisoryLockInfo[];
}

/** The façade `createPgFence` returns. */
export interface PgFence extends AsyncDisposable {
  readonly schema: string;
  readonly owner: string;

  migrate(options?: MigrateOptions): Promise<MigrationRun[]>;

  lock(key: string | bigint, options?: LockOptions): Promise<AdvisoryLock>;
  tryLock(key: string | bigint, options?: TryLockOptions): Promise<AdvisoryLock | null>;
  withLock<T>(
    key: string | bigint,
    fn: (lock: AdvisoryLock) => Promise<T> | T,
    options?: LockOptions,
  ): Promise<T>;
  /**
   * Every key or none, in the order asked: while it waits the caller holds none of them, and
   * callers asking for overlapping sets in any order never deadlock. Duplicate keys are refused.
   */
  lockAll(keys: readonly (string | bigint)[], options?: LockOptions): Promise<AdvisoryLock[]>;
  xactLock(trx: Transaction, key: string | bigint, options?: XactLockOptions): Promise<void>;

  lease(key: string, options?: LeaseOptions): Promise<Lease>;
  tryLease(key: string, options?: TryLeaseOptions): Promise<Lease | null>;
  withLease<T>(
    key: string,
    fn: (lease: Lease) => Promise<T> | T,
    options?: LeaseOptions,
  ): Promise<T>;

  /** Leases every key or none (guarantee 12), in one statement; the leases come in the order asked. */
  leaseAll(keys: readonly string[], options?: LeaseAllOptions): Promise<Lease[]>;

  /** Waits until elected: the term is a lease on `name`, auto-renewed; `release()` resigns. */
  campaign(name: string, options?: CampaignOptions): Promise<Lease>;
  /** The current leader of `name`, or null, by the database clock. */
  leader(name: string): Promise<LeaderInfo | null>;
  /** Every change of leader of `name` (or `null` when nobody leads), in token order. */
  observe(name: string, options?: ObserveOptions): AsyncIterable<LeaderInfo | null>;

  claim(options: ClaimOptions): Promise<Lease[]>;
  /**
   * In the caller's transaction (a pg client after BEGIN, or a Kysely Transaction): releases
   * those of `leases` that are still current and returns them; they go when it commits.
   */
  xactRelease(trx: Transaction, leases: readonly Lease[]): Promise<Lease[]>;
  isCurrent(key: string, token: bigint): Promise<boolean>;

  reap(options?: ReapOptions): Promise<number>;
  startReaper(options?: ReaperOptions): Reaper;
  inspect(options?: InspectOptions): Promise<Inspection>;

  /** Releases what this instance holds and ends the connections it opened (never the caller's pool). */
  close(): Promise<void>;
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
