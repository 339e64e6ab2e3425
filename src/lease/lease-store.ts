import type { Database } from '../db/database.js';
import { isTransient } from '../db/errors.js';
import { Coalescer } from '../util/coalescer.js';
import {
  acquireParams,
  acquireSql,
  parseAcquireRow,
  releaseParams,
  releaseSql,
  renewParams,
  renewSql,
  termId,
  type AcquireOutcome,
  type ReleaseRow,
  type RenewRow,
} from './lease-sql.js';
import {
  acquireBatchParams,
  acquireBatchSql,
  acquireSetSql,
  type KindBatchRow,
  leaveQueueSql,
  parseKindRow,
  releaseHoldersParams,
  releaseHoldersSql,
  renewHoldersSql,
} from './kind-sql.js';
import type { LockMode } from '../options.js';

/** One key to acquire. @internal */
export interface AcquireRequest {
  key: string;
  ttlMs: number;
  metadata: Record<string, unknown> | undefined;
  metadataJson: string | null;
  /** Default exclusive. */
  mode?: LockMode;
  /** A semaphore's permit count; null or absent for a plain or shared lease. */
  permits?: number | null;
}

/** One term to renew or release; `holder` marks a holder of a shared or semaphore key. @internal */
export interface Term {
  key: string;
  token: bigint;
  holder?: boolean;
}

/** One attempt of any kind, with the caller's place in the key's queue. @internal */
interface KindAttempt {
  request: AcquireRequest;
  waiter: bigint | null;
  queueTtlMs: number | null;
}

/** A renewal answer: the new expiry per term that was still live. @internal */
export interface RenewResult {
  sentAt: number;
  expiresAt: Map<string, Date>;
  /** Terms still live but not renewed, their rows being locked by someone else (skipLocked). */
  busy: Set<string>;
}

/**
 * Keys per acquire statement: each takes a transaction-level advisory lock, and PostgreSQL's
 * shared lock table is sized for ~64 locks per connection, so batches stay well below that.
 */
const MAX_ACQUIRE_BATCH = 256;
const MAX_RELEASE_BATCH = 1_000;
/** Batches running at once: enough to use a few pool connections, few enough to batch under load. */
const MAX_IN_FLIGHT = 4;

/**
 * The lease table's statements for one PgFence. Acquires and releases from concurrent callers
 * are coalesced into one statement each (one commit for many callers); renewals already come
 * in batches from the renewer.
 * @internal
 */
export class LeaseStore {
  readonly #db: Database;
  readonly #owner: string;
  readonly #acquirer: Coalescer<AcquireRequest, AcquireOutcome>;
  readonly #releaser: Coalescer<{ key: string; token: bigint }, boolean | 'busy'>;
  readonly #waitingReleaser: Coalescer<{ key: string; token: bigint }, boolean | 'busy'>;
  readonly #kindAcquirer: Coalescer<KindAttempt, AcquireOutcome>;
  readonly #holderReleaser: Coalescer<{ key: string; token: bigint }, boolean>;

  constructor(db: Database, owner: string) {
    this.#db = db;
    this.#owner = owner;
    this.#acquirer = new Coalescer((batch) => this.#acquireBatch(batch), {
      maxBatch: MAX_ACQUIRE_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
    this.#releaser = new Coalescer((batch) => this.#releaseBatch(batch, true), {
      maxBatch: MAX_RELEASE_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
    this.#waitingReleaser = new Coalescer((batch) => this.#releaseBatch(batch, false), {
      maxBatch: MAX_RELEASE_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
    this.#kindAcquirer = new Coalescer((batch) => this.#acquireKindBatch(batch), {
      maxBatch: MAX_ACQUIRE_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
    this.#holderReleaser = new Coalescer((batch) => this.#releaseHolderBatch(batch), {
      maxBatch: MAX_RELEASE_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
  }

  /** One attempt at one key; joins whatever batch is forming. */
  acquire(request: AcquireRequest): Promise<AcquireOutcome> {
    return this.#acquirer.submit(request);
  }

  /** Deletes one term of a key; true if it was there. */
  async release(key: string, token: bigint, holder = false): Promise<boolean> {
    // A holder of a shared or semaphore key: never busy (release_lease_holders takes the
    // key's serialisation lock and deletes the holder's own row).
    if (holder) return this.#holderReleaser.submit({ key, token });
    const answer = await this.#releaser.submit({ key, token });
    if (answer !== 'busy') return answer;
    // Its row is locked by someone else: most often this process's own renewal of many
    // leases, for a moment; sometimes a guarded write in progress. The busy ones wait for
    // their rows together, in a shared statement that waits instead of skipping (bounded like
    // every statement: a write that never commits costs the lease its TTL, not a hang), so
    // thousands of releases that meet a renewal do not become thousands of statements. It
    // cannot deadlock with the renewal, which skips locked rows rather than waiting.
    const waited = await this.#waitingReleaser.submit({ key, token });
    return waited === true;
  }

  /**
   * Deletes many terms in one statement (used by close), within `timeoutMs`; returns how many.
   * A term whose row someone else has locked is left to run out its TTL rather than waited for.
   */
  async releaseAll(terms: Term[], timeoutMs: number): Promise<number> {
    const plain = terms.filter((t) => !t.holder);
    const holders = terms.filter((t) => t.holder);
    const [a, b] = await Promise.all([
      plain.length === 0
        ? 0
        : this.#db
            .query<ReleaseRow>(
              releaseSql(this.#db.schema),
              releaseParams(this.#owner, plain, true),
              {
                timeoutMs,
              },
            )
            .then((r) => r.rows.filter((row) => !row.busy).length),
      holders.length === 0
        ? 0
        : this.#db
            .query(releaseHoldersSql(this.#db.schema), releaseHoldersParams(holders), {
              timeoutMs,
            })
            .then((r) => r.rowCount ?? 0),
    ]);
    return a + b;
  }

  /**
   * One attempt at one key of any kind. With `queueTtlMs`, a caller that is not granted takes
   * or refreshes (`waiter`) its place in the key's queue. Concurrent attempts share one
   * statement (acquire_lease_batch), answered in the order they were made.
   */
  acquireOne(
    request: AcquireRequest,
    waiter: bigint | null,
    queueTtlMs: number | null,
  ): Promise<AcquireOutcome> {
    return this.#kindAcquirer.submit({ request, waiter, queueTtlMs });
  }

  /**
   * Every key of `keys` or none, in one statement; one outcome per key, in order. `places`: the
   * set's places in the keys' queues from the previous attempt (or null); with `queueTtlMs`, a
   * refused set keeps (or takes) them, and each outcome carries its key's place.
   */
  async acquireSet(
    keys: readonly string[],
    request: { ttlMs: number; metadata: unknown; metadataJson: string | null; mode: LockMode },
    places: readonly (bigint | null)[] | null,
    queueTtlMs: number | null,
  ): Promise<AcquireOutcome[]> {
    const sentAt = performance.now();
    const result = await this.#db.query<Parameters<typeof parseKindRow>[0] & { key: string }>(
      acquireSetSql(this.#db.schema),
      [
        keys,
        this.#owner,
        request.ttlMs,
        request.metadataJson,
        request.mode,
        places === null ? null : places.map((id) => (id === null ? null : id.toString())),
        queueTtlMs,
      ],
    );
    return result.rows.map((row) => parseKindRow(row, row.key, sentAt, request.metadata));
  }

  /** Leaves a key's queue (a waiter that gave up). */
  async leaveQueue(waiter: bigint): Promise<void> {
    await this.#db.query(leaveQueueSql(this.#db.schema), [waiter.toString()]);
  }

  /**
   * Renews terms in one statement, each scoped to (key, token, unexpired). With `skipLocked`,
   * a term whose row someone else has locked is reported busy instead of waited for, so that
   * one lease's wait never holds up the others sharing the statement. With `fresh`, the
   * statement runs on a new connection of its own (a retry after a failure that may have come
   * from a dead pooled connection).
   */
  async renew(
    terms: readonly (Term & { ttlMs: number })[],
    timeoutMs: number,
    options: { skipLocked?: boolean; fresh?: boolean } = {},
  ): Promise<RenewResult> {
    const sentAt = performance.now();
    const plain = terms.filter((t) => !t.holder);
    const holders = terms.filter((t) => t.holder);
    const bound = { timeoutMs, fresh: options.fresh ?? false };
    // Holders of shared and semaphore keys have their own statement (it never waits for a
    // locked row: a busy term comes back busy).
    const results = await Promise.all([
      plain.length === 0
        ? []
        : this.#db
            .query<RenewRow>(
              renewSql(this.#db.schema),
              renewParams(this.#owner, plain, options.skipLocked ?? false),
              bound,
            )
            .then((r) => r.rows),
      holders.length === 0
        ? []
        : this.#db
            .query<RenewRow>(
              renewHoldersSql(this.#db.schema),
              [
                holders.map((h) => h.key),
                holders.map((h) => h.token.toString()),
                holders.map((h) => h.ttlMs),
              ],
              bound,
            )
            .then((r) => r.rows),
    ]);
    const expiresAt = new Map<string, Date>();
    const busy = new Set<string>();
    for (const row of results.flat()) {
      if (row.busy) busy.add(termId(row.key, row.token));
      else expiresAt.set(termId(row.key, row.token), row.expires_at);
    }
    return { sentAt, expiresAt, busy };
  }

  async #acquireBatch(batch: AcquireRequest[]): Promise<PromiseSettledResult<AcquireOutcome>[]> {
    // Callers of one key queue in-process, but keep a batch's keys distinct regardless.
    const seen = new Set<string>();
    const first: AcquireRequest[] = [];
    const rest: AcquireRequest[] = [];
    for (const request of batch) {
      if (seen.has(request.key)) rest.push(request);
      else {
        seen.add(request.key);
        first.push(request);
      }
    }
    const results = new Map<AcquireRequest, PromiseSettledResult<AcquireOutcome>>();
    const acquire = (requests: AcquireRequest[]) => this.#acquireDistinct(requests);
    const settled = await settleBatch(first, acquire);
    first.forEach((r, i) => results.set(r, settled[i]!));
    for (const r of rest) results.set(r, (await settleBatch([r], acquire))[0]!);
    return batch.map((r) => results.get(r)!);
  }

  async #acquireDistinct(requests: AcquireRequest[]): Promise<AcquireOutcome[]> {
    const sentAt = performance.now();
    // Bounded like every statement: a grant that lands after the caller gave up is a row
    // nobody holds, which expires by its TTL.
    const result = await this.#db.query<Parameters<typeof parseAcquireRow>[0]>(
      acquireSql(this.#db.schema),
      acquireParams(this.#owner, requests),
    );
    const byKey = new Map(result.rows.map((row) => [row.key, row]));
    return requests.map((r) => {
      const row = byKey.get(r.key);
      if (!row) throw new Error(`pgfence: acquire_leases returned no row for "${r.key}"`);
      return parseAcquireRow(row, sentAt, r.metadata);
    });
  }

  #acquireKindBatch(batch: KindAttempt[]): Promise<PromiseSettledResult<AcquireOutcome>[]> {
    return settleBatch(batch, (attempts) => this.#acquireKinds(attempts));
  }

  async #acquireKinds(batch: KindAttempt[]): Promise<AcquireOutcome[]> {
    const sentAt = performance.now();
    const result = await this.#db.query<KindBatchRow>(
      acquireBatchSql(this.#db.schema),
      acquireBatchParams(this.#owner, batch),
    );
    const byOrd = new Map(result.rows.map((row) => [row.ord, row]));
    return batch.map(({ request }, i) => {
      const row = byOrd.get(i + 1);
      if (!row)
        throw new Error(`pgfence: acquire_lease_batch returned no row for "${request.key}"`);
      return parseKindRow(row, request.key, sentAt, request.metadata);
    });
  }

  async #releaseHolderBatch(
    batch: { key: string; token: bigint }[],
  ): Promise<PromiseSettledResult<boolean>[]> {
    const result = await this.#db.query<ReleaseRow>(
      releaseHoldersSql(this.#db.schema),
      releaseHoldersParams(batch),
    );
    const released = new Set(result.rows.map((row) => termId(row.key, row.token)));
    return batch.map((t) => ({ status: 'fulfilled', value: released.has(termId(t.key, t.token)) }));
  }

  async #releaseBatch(
    batch: { key: string; token: bigint }[],
    skipLocked: boolean,
  ): Promise<PromiseSettledResult<boolean | 'busy'>[]> {
    const result = await this.#db.query<ReleaseRow>(
      releaseSql(this.#db.schema),
      releaseParams(this.#owner, batch, skipLocked),
    );
    const answers = new Map<string, boolean | 'busy'>();
    for (const row of result.rows)
      answers.set(termId(row.key, row.token), row.busy ? 'busy' : true);
    return batch.map((t) => ({
      status: 'fulfilled',
      value: answers.get(termId(t.key, t.token)) ?? false,
    }));
  }
}

/**
 * Answers a batch with one statement. If it fails for a reason that is not transient (one
 * item's bad input broke it), each item is answered on its own, one after another in the
 * batch's order (a queue's order of arrival is kept), so that one caller's failure is not
 * everybody's. A transient failure (the connection, a timeout) is every item's.
 */
async function settleBatch<T, R>(
  items: T[],
  run: (items: T[]) => Promise<R[]>,
): Promise<PromiseSettledResult<R>[]> {
  try {
    return (await run(items)).map((value) => ({ status: 'fulfilled', value }));
  } catch (error) {
    if (items.length === 1 || isTransient(error)) {
      return items.map(() => ({ status: 'rejected', reason: error }));
    }
    const single: PromiseSettledResult<R>[] = [];
    for (const item of items) {
      try {
        single.push({ status: 'fulfilled', value: (await run([item]))[0]! });
      } catch (reason) {
        single.push({ status: 'rejected', reason });
      }
    }
    return single;
  }
}
