import { qualified } from '../db/identifiers.js';
import type { LockMode } from '../options.js';
import type { AcquireOutcome } from './lease-sql.js';

// The statements behind shared leases, semaphores, lease sets and the waiter queue, each one
// round trip to a function of migration 1764130000005 (acquire_lease_batch: 1764130000007). int8 columns are read as text and
// become bigint here, once.

/** One row of `acquire_lease_batch` or `acquire_lease_set`. */
interface KindRow {
  key?: string;
  acquired: boolean;
  token: string | null;
  acquired_at: Date | null;
  expires_at: Date | null;
  db_now: Date;
  waiter?: string | null;
  conflict: string | null;
  held_permits: number | null;
}

/** One row of `acquire_lease_batch`: a KindRow for the request of ordinal `ord` (from 1). */
export type KindBatchRow = KindRow & { ord: number };

/** Many callers' attempts (any kind, with their places in the queues) in one statement. */
export function acquireBatchSql(schema: string): string {
  return `SELECT ord, acquired, token::text AS token, acquired_at, expires_at, db_now,
                 waiter::text AS waiter, conflict, held_permits
          FROM ${qualified(schema, 'acquire_lease_batch')}($1::text[], $2::text, $3::float8[],
                 $4::jsonb[], $5::text[], $6::int4[], $7::int8[], $8::float8[])`;
}

/** Parameters of acquireBatchSql, one array element per attempt, in the order given. */
export function acquireBatchParams(
  owner: string,
  attempts: readonly {
    request: {
      key: string;
      ttlMs: number;
      metadataJson: string | null;
      mode?: LockMode;
      permits?: number | null;
    };
    waiter: bigint | null;
    queueTtlMs: number | null;
  }[],
): unknown[] {
  return [
    attempts.map((a) => a.request.key),
    owner,
    attempts.map((a) => a.request.ttlMs),
    attempts.map((a) => a.request.metadataJson),
    attempts.map((a) => a.request.mode ?? 'exclusive'),
    attempts.map((a) => a.request.permits ?? null),
    attempts.map((a) => (a.waiter === null ? null : a.waiter.toString())),
    attempts.map((a) => a.queueTtlMs),
  ];
}

/**
 * Every key or none, in one statement; a set that has to wait holds a place in every key's
 * queue (`$6`: the places it has, one per key; `$7`: how long they last), migration
 * 1764130000010.
 */
export function acquireSetSql(schema: string): string {
  return `SELECT key, acquired, token::text AS token, acquired_at, expires_at, db_now,
                 conflict, held_permits, waiter::text AS waiter
          FROM ${qualified(schema, 'acquire_lease_set')}($1::text[], $2::text, $3::float8,
                 $4::jsonb, $5::text, $6::int8[], $7::float8)`;
}

/**
 * What one row says. Not granted: `holderExpiresInMs` is how long the thing in the way has
 * left by the database clock, `Infinity` when only a wake-up (a release) can help, 0 when the
 * key is busy for a moment.
 */
export function parseKindRow(
  row: KindRow,
  key: string,
  sentAt: number,
  metadata: unknown,
): AcquireOutcome {
  if (row.acquired && row.token !== null && row.acquired_at && row.expires_at) {
    return {
      acquired: true,
      sentAt,
      lease: {
        key,
        token: BigInt(row.token),
        acquiredAt: row.acquired_at,
        expiresAt: row.expires_at,
        ...(metadata === undefined ? {} : { metadata }),
      },
    };
  }
  const left = row.expires_at
    ? Math.max(0, row.expires_at.getTime() - row.db_now.getTime())
    : Infinity;
  return {
    acquired: false,
    key,
    holderExpiresInMs: left,
    waiter: row.waiter === undefined || row.waiter === null ? null : BigInt(row.waiter),
    ...(row.conflict === 'permits' ? { heldPermits: row.held_permits ?? 0 } : {}),
  };
}

/** One row of `renew_lease_holders` (the same shape as `renew_leases`'). */
export function renewHoldersSql(schema: string): string {
  return `SELECT key, token::text AS token, expires_at, busy
          FROM ${qualified(schema, 'renew_lease_holders')}($1::text[], $2::bigint[], $3::float8[])`;
}

export function releaseHoldersSql(schema: string): string {
  return `SELECT key, token::text AS token, false AS busy
          FROM ${qualified(schema, 'release_lease_holders')}($1::text[], $2::bigint[])`;
}

/** Parameters of releaseHoldersSql: each term is (key, token); a holder's token is its own. */
export function releaseHoldersParams(terms: readonly { key: string; token: bigint }[]): unknown[] {
  return [terms.map((t) => t.key), terms.map((t) => t.token.toString())];
}

export function leaveQueueSql(schema: string): string {
  return `SELECT ${qualified(schema, 'leave_lease_queue')}($1::int8)`;
}
