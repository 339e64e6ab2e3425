import { qualified } from '../db/identifiers.js';
import type { AcquiredLease } from './acquired.js';

// The three statements behind leases, each one round trip to a function the migration ships.
// int8 columns are read as text and become bigint here, once.

/** One row of `acquire_leases`. */
interface AcquireRow {
  key: string;
  acquired: boolean;
  token: string | null;
  acquired_at: Date | null;
  expires_at: Date | null;
  db_now: Date;
  metadata?: unknown;
}

/** What one key's acquire attempt found. @internal */
export type AcquireOutcome =
  | { acquired: true; lease: AcquiredLease; sentAt: number }
  | {
      acquired: false;
      key: string;
      holderExpiresInMs: number | null;
      /** The caller's place in the key's queue, when it took or kept one. */
      waiter?: bigint | null;
      /** Set when the key is held with another permit count (0: shared): a PermitsMismatchError. */
      heldPermits?: number;
    };

export function acquireSql(schema: string): string {
  return `SELECT key, acquired, token::text AS token, acquired_at, expires_at, db_now
          FROM ${qualified(schema, 'acquire_leases')}($1::text[], $2::text, $3::float8[], $4::jsonb[])`;
}

/** Parameters of acquireSql for a batch of distinct keys. */
export function acquireParams(
  owner: string,
  requests: readonly { key: string; ttlMs: number; metadataJson: string | null }[],
): unknown[] {
  return [
    requests.map((r) => r.key),
    owner,
    requests.map((r) => r.ttlMs),
    requests.map((r) => r.metadataJson),
  ];
}

export function parseAcquireRow(
  row: AcquireRow,
  sentAt: number,
  metadata: unknown,
): AcquireOutcome {
  if (row.acquired && row.token !== null && row.acquired_at && row.expires_at) {
    return {
      acquired: true,
      sentAt,
      lease: {
        key: row.key,
        token: BigInt(row.token),
        acquiredAt: row.acquired_at,
        expiresAt: row.expires_at,
        ...(metadata === undefined ? {} : { metadata }),
      },
    };
  }
  // Both times come from the database clock: their difference is what the holder has left.
  const left = row.expires_at ? row.expires_at.getTime() - row.db_now.getTime() : null;
  return { acquired: false, key: row.key, holderExpiresInMs: left };
}

/** One row of `renew_leases`. */
export interface RenewRow {
  key: string;
  token: string;
  expires_at: Date;
  /** Not renewed: its row was locked by someone else (skipLocked only); try again shortly. */
  busy: boolean;
}

export function renewSql(schema: string): string {
  return `SELECT key, token::text AS token, expires_at, busy
          FROM ${qualified(schema, 'renew_leases')}($1::text[], $2::bigint[], $3::text, $4::float8[], $5::boolean)`;
}

/** Parameters of renewSql: each term is (key, token, owner); one owner per statement. */
export function renewParams(
  owner: string,
  leases: readonly { key: string; token: bigint; ttlMs: number }[],
  skipLocked: boolean,
): unknown[] {
  return [
    leases.map((l) => l.key),
    leases.map((l) => l.token.toString()),
    owner,
    leases.map((l) => l.ttlMs),
    skipLocked,
  ];
}

/** One row of `release_leases`. */
export interface ReleaseRow {
  key: string;
  token: string;
  /** Not released: its row was locked by someone else (skipLocked only). */
  busy: boolean;
}

export function releaseSql(schema: string): string {
  return `SELECT key, token::text AS token, busy
          FROM ${qualified(schema, 'release_leases')}($1::text[], $2::bigint[], $3::text, $4::boolean)`;
}

/** Parameters of releaseSql: each term is (key, token, owner); one owner per statement. */
export function releaseParams(
  owner: string,
  leases: readonly { key: string; token: bigint }[],
  skipLocked: boolean,
): unknown[] {
  return [leases.map((l) => l.key), leases.map((l) => l.token.toString()), owner, skipLocked];
}

/** `key` + NUL + token: a map key for one term (NUL cannot occur in a key). */
export function termId(key: string, token: bigint | string): string {
  return `${key}\0${token.toString()}`;
}
