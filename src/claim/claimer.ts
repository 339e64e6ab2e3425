import type { Database } from '../db/database.js';
import { explainDbError, sqlState } from '../db/errors.js';
import { DatabaseError, InvalidKeyError, LockError, NotMigratedError } from '../errors.js';
import type { AcquiredLease } from '../lease/acquired.js';
import type { LeaseManager } from '../lease/lease-manager.js';
import type { ResolvedOptions } from '../options.js';
import type { ClaimOptions, Lease } from '../types.js';
import { validateClaimRequest } from './claim-request.js';
import {
  claimFromStatement,
  claimKeysStatement,
  type ClaimedRow,
  type Statement,
} from './claim-sql.js';
import { compileFrom } from './compile-from.js';

/**
 * SKIP LOCKED claiming: takes up to `limit` leases over the caller's own table (`from`) or out
 * of a list of keys, in one statement, without waiting for other claimers, and hands them to
 * the LeaseManager, which renews and releases them like any other lease of this instance.
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
    const { schema } = this.#db;
    const { owner } = this.#options;
    let statement: Statement;
    if (request.kind === 'from') {
      const from = await compileFrom(request.from);
      statement = claimFromStatement(schema, from, owner, request.ttlMs, request.limit);
    } else {
      if (request.keys.length === 0) return [];
      statement = claimKeysStatement(schema, request.keys, owner, request.ttlMs, request.limit);
    }

    // The local deadline of every lease counts from here, before the request leaves.
    const sentAt = performance.now();
    let rows: ClaimedRow[];
    try {
      rows = (await this.#db.query<ClaimedRow>(statement.text, statement.values)).rows;
    } catch (error) {
      throw explainClaimError(error, schema);
    }
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
