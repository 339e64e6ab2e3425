import type pg from 'pg';
import type { Database } from '../db/database.js';
import { explainDbError, sqlState } from '../db/errors.js';
import { DatabaseError, InvalidKeyError, LockError, NotMigratedError } from '../errors.js';
import type { AcquiredLease } from '../lease/acquired.js';
import { Cancellation } from '../util/cancellation.js';
import type { LeaseManager } from '../lease/lease-manager.js';
import type { ResolvedOptions } from '../options.js';
import type { ClaimOptions, Lease } from '../types.js';
import { validateClaimRequest, type ClaimRequest } from './claim-request.js';
import {
  claimFromStatement,
  claimKeysStatement,
  probeFromStatement,
  probeKeysStatement,
  type ClaimedRow,
  type ProbeRow,
  type Statement,
} from './claim-sql.js';
import { claimWithWait } from './claim-wait.js';
import { compileFrom } from './compile-from.js';
import { xactRelease } from './xact-release.js';

/**
 * SKIP LOCKED claiming: takes up to `limit` leases over the caller's own table (`from`) or out
 * of a list of keys, in one statement, without waiting for other claimers, and hands them to
 * the LeaseManager, which renews and releases them like any other lease of this instance.
 * With `waitMs`, waits for at least one (claim-wait.ts).
 * @internal
 */
export class Claimer {
  readonly #db: Database;
  readonly #leases: LeaseManager;
  readonly #options: ResolvedOptions;

  constructor(db: Database, leases: LeaseManager, options: ResolvedOptions) {
    this.#db = db;
    this.#leases = leases;
    this.#options = options;
  }

  async claim(options: ClaimOptions): Promise<Lease[]> {
    const request = validateClaimRequest(options, this.#options.ttlMs);
    if (request.signal?.aborted) throw request.signal.reason;
    const { schema } = this.#db;
    const { owner } = this.#options;
    let statement: Statement;
    let probe: Statement;
    if (request.kind === 'from') {
      const from = await compileFrom(request.from);
      statement = claimFromStatement(schema, from, owner, request.ttlMs, request.limit);
      probe = probeFromStatement(schema, from);
    } else {
      if (request.keys.length === 0) return [];
      statement = claimKeysStatement(schema, request.keys, owner, request.ttlMs, request.limit);
      probe = probeKeysStatement(schema, request.keys);
    }
    if (request.waitMs === 0) return this.#attempt(statement, request);

    // The wait's own deadline is claimWithWait's (an empty answer, not an error): the
    // cancellation only carries the caller's signal and close().
    const cancel = new Cancellation('claim', 0, [request.signal, this.#leases.closing]);
    try {
      return await claimWithWait(
        {
          listener: this.#leases.listener,
          pollIntervalMs: this.#options.pollIntervalMs,
          attempt: () => this.#attempt(statement, request),
          probe: async () => {
            const row = (await this.#run<ProbeRow>(probe)).rows[0];
            return { free: row?.free === true, nextExpiryMs: row?.next_expiry_ms ?? null };
          },
          discard: (late) => {
            for (const lease of late) lease.release().catch(this.#options.onError);
          },
        },
        request.waitMs,
        request.wakeChannel,
        cancel,
      );
    } finally {
      cancel.dispose();
    }
  }

  /** Releases, in the caller's transaction, those of `leases` still current (xact-release.ts). */
  xactRelease(trx: unknown, leases: readonly Lease[]): Promise<Lease[]> {
    return xactRelease(this.#db.schema, this.#options.owner, trx, leases);
  }

  async #attempt(statement: Statement, request: ClaimRequest): Promise<Lease[]> {
    // The local deadline of every lease counts from here, before the request leaves.
    const sentAt = performance.now();
    const rows = (await this.#run<ClaimedRow>(statement)).rows;
    const acquired: AcquiredLease[] = rows.map((row) => ({
      key: row.key,
      token: BigInt(row.token),
      acquiredAt: row.acquired_at,
      expiresAt: row.expires_at,
    }));
    return this.#leases.adopt(acquired, {
      ttlMs: request.ttlMs,
      autoRenew: request.autoRenew,
      sentAt,
    });
  }

  async #run<R extends pg.QueryResultRow>(statement: Statement): Promise<pg.QueryResult<R>> {
    try {
      return await this.#db.query<R>(statement.text, statement.values);
    } catch (error) {
      throw explainClaimError(error, this.#db.schema);
    }
  }
}

/**
 * The claim statement also runs the caller's query, so a missing relation may be the caller's
 * own table: only a missing pgfence object means "not migrated". A bad key the caller's query
 * yielded becomes an `InvalidKeyError` (the statement rolled back: nothing was locked or taken).
 */
function explainClaimError(error: unknown, schema: string): LockError {
  const raw = error instanceof LockError && error.cause !== undefined ? error.cause : error;
  const code = sqlState(raw);
  const message = raw instanceof Error ? raw.message : '';
  if (code === '22023' && message.startsWith('claim:')) {
    const detail = (raw as { detail?: unknown }).detail;
    return new InvalidKeyError(detail === 'NULL' ? null : detail, message);
  }
  const explained = explainDbError(error, schema);
  // PostgreSQL names our objects `"<schema>.leases"`, `<schema>.claim_leases(…)`, `"<schema>"`.
  const ours = new RegExp(`(^|[\\s"])${schema}[."]`, 'u');
  if (explained instanceof NotMigratedError && !ours.test(message)) {
    // The caller's own table or function is missing: their query's error, not pgfence's schema.
    return new DatabaseError(`the claim query failed: ${message}`, code, { cause: raw });
  }
  return explained;
}
