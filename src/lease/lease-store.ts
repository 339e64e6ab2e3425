import type { Database } from '../db/database.js';
import { isTransient } from '../db/errors.js';
import { Coalescer } from './coalescer.js';
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
  type RenewRow,
} from './lease-sql.js';
import { timedQuery } from './timed-query.js';

/** One key to acquire. @internal */
export interface AcquireRequest {
  key: string;
  ttlMs: number;
  metadata: Record<string, unknown> | undefined;
  metadataJson: string | null;
}

/** A renewal answer: the new expiry per term that was still live. @internal */
export interface RenewResult {
  sentAt: number;
  expiresAt: Map<string, Date>;
}

const MAX_BATCH = 1_000;
/**
 * A release that gets no answer in this time fails (the lease then runs out its TTL): a
 * stalled network must not hang release() or close() for ever.
 */
const RELEASE_TIMEOUT_MS = 10_000;
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
  readonly #releaser: Coalescer<{ key: string; token: bigint }, boolean>;

  constructor(db: Database, owner: string) {
    this.#db = db;
    this.#owner = owner;
    this.#acquirer = new Coalescer((batch) => this.#acquireBatch(batch), {
      maxBatch: MAX_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
    this.#releaser = new Coalescer((batch) => this.#releaseBatch(batch), {
      maxBatch: MAX_BATCH,
      maxInFlight: MAX_IN_FLIGHT,
    });
  }

  /** One attempt at one key; joins whatever batch is forming. */
  acquire(request: AcquireRequest): Promise<AcquireOutcome> {
    return this.#acquirer.submit(request);
  }

  /** Deletes one term of a key; true if it was there. */
  release(key: string, token: bigint): Promise<boolean> {
    return this.#releaser.submit({ key, token });
  }

  /** Deletes many terms in one statement (used by close), within `timeoutMs`. */
  async releaseAll(terms: { key: string; token: bigint }[], timeoutMs: number): Promise<number> {
    if (terms.length === 0) return 0;
    const result = await timedQuery(
      this.#db,
      releaseSql(this.#db.schema),
      releaseParams(terms),
      timeoutMs,
    );
    return result.rowCount ?? 0;
  }

  /** Renews terms in one statement, each scoped to (key, token, unexpired). */
  async renew(
    terms: readonly { key: string; token: bigint; ttlMs: number }[],
    timeoutMs: number,
  ): Promise<RenewResult> {
    const sentAt = performance.now();
    const result = await timedQuery<RenewRow>(
      this.#db,
      renewSql(this.#db.schema),
      renewParams(terms),
      timeoutMs,
    );
    const expiresAt = new Map<string, Date>();
    for (const row of result.rows) expiresAt.set(termId(row.key, row.token), row.expires_at);
    return { sentAt, expiresAt };
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
    try {
      const outcomes = await this.#acquireDistinct(first);
      first.forEach((r, i) => results.set(r, { status: 'fulfilled', value: outcomes[i]! }));
    } catch (error) {
      if (first.length > 1 && !isTransient(error)) {
        // Something in one request broke the statement: answer each on its own, so that one
        // caller's failure is not everybody's.
        const single = await Promise.allSettled(first.map((r) => this.#acquireDistinct([r])));
        first.forEach((r, i) => {
          const s = single[i]!;
          results.set(
            r,
            s.status === 'fulfilled' ? { status: 'fulfilled', value: s.value[0]! } : s,
          );
        });
      } else {
        for (const r of first) results.set(r, { status: 'rejected', reason: error });
      }
    }
    for (const r of rest) {
      try {
        results.set(r, { status: 'fulfilled', value: (await this.#acquireDistinct([r]))[0]! });
      } catch (error) {
        results.set(r, { status: 'rejected', reason: error });
      }
    }
    return batch.map((r) => results.get(r)!);
  }

  async #acquireDistinct(requests: AcquireRequest[]): Promise<AcquireOutcome[]> {
    const sentAt = performance.now();
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

  async #releaseBatch(
    batch: { key: string; token: bigint }[],
  ): Promise<PromiseSettledResult<boolean>[]> {
    const result = await timedQuery<{ key: string; token: string }>(
      this.#db,
      releaseSql(this.#db.schema),
      releaseParams(batch),
      RELEASE_TIMEOUT_MS,
    );
    const deleted = new Set(result.rows.map((row) => termId(row.key, row.token)));
    return batch.map((t) => ({ status: 'fulfilled', value: deleted.has(termId(t.key, t.token)) }));
  }
}
