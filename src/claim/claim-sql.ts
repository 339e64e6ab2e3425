import { qualified } from '../db/identifiers.js';
import type { CompiledFrom } from './compile-from.js';

/** A statement ready for `pool.query`. @internal */
export interface Statement {
  text: string;
  values: unknown[];
}

/** The columns both claim statements return. @internal */
export interface ClaimedRow {
  key: string;
  token: string;
  acquired_at: Date;
  expires_at: Date;
}

/**
 * Claiming over the caller's own query, in one statement and one commit.
 *
 * The caller's query becomes a sub-select in FROM, and the locking clause on the enclosing
 * SELECT applies to every table the sub-select reads (PostgreSQL pushes FOR UPDATE down into
 * sub-queries). So its candidate rows are locked FOR UPDATE SKIP LOCKED, which
 * - skips rows another claimer is locking right now instead of waiting for them, and
 * - re-checks each row it does lock against the latest committed version (EvalPlanQual): a job
 *   finished after this statement's snapshot but before its lock no longer matches the
 *   caller's WHERE and is dropped.
 * The lock sits below the LIMIT, so skipped rows do not use up the limit; keys with a live
 * lease are filtered out before it for the same reason. claim_candidates then takes the keys
 * without waiting, in one set-based statement (see migrations/1764130000004_claim_batch.js).
 * The row locks last until the statement's commit, by which time the leases are in place.
 *
 * The caller's parameters keep their numbers `$1…$n` (its SQL is used verbatim, never
 * rewritten); ours follow as `$n+1…`.
 * @internal
 */
export function claimFromStatement(
  schema: string,
  from: CompiledFrom,
  owner: string,
  ttlMs: number,
  limit: number,
): Statement {
  const n = from.parameters.length;
  const [pLimit, pOwner, pTtl] = [n + 1, n + 2, n + 3];
  const text = `SELECT r.key, r.token::text AS token, r.acquired_at, r.expires_at
FROM ${qualified(schema, 'claim_candidates')}(
  ARRAY(
    SELECT c.key::text FROM (
${from.sql}
    ) AS c
    WHERE NOT EXISTS (
      SELECT 1 FROM ${qualified(schema, 'leases')} l
      WHERE l.key = c.key::text AND l.expires_at > clock_timestamp()
    )
    LIMIT $${pLimit}::integer
    FOR UPDATE SKIP LOCKED
  ),
  $${pOwner}::text, $${pTtl}::double precision
) AS r`;
  return { text, values: [...from.parameters, limit, owner, ttlMs] };
}

/** Claiming up to `limit` free keys out of a list, in the list's order. @internal */
export function claimKeysStatement(
  schema: string,
  keys: readonly string[],
  owner: string,
  ttlMs: number,
  limit: number,
): Statement {
  return {
    text: `SELECT key, token::text AS token, acquired_at, expires_at
FROM ${qualified(schema, 'claim_leases')}($1::text[], $2::text, $3::double precision, $4::integer)`,
    values: [keys, owner, ttlMs, limit],
  };
}

/** What a claimer that came back empty needs to know to wait well. @internal */
export interface ProbeRow {
  /** Some candidate has no live lease: it was skipped as busy (a row lock), try again soon. */
  free: boolean;
  /** Milliseconds until the next live lease expires, by the database clock; null if none. */
  next_expiry_ms: number | null;
}

/**
 * After an empty claim over the caller's query: is any matching row free (no live lease), and
 * when does the next lease expire? Nothing is locked. The expiry is the next of any lease, not
 * only of this query's tasks: finding those would join every in-flight task, and an early
 * look costs one claim statement.
 * @internal
 */
export function probeFromStatement(schema: string, from: CompiledFrom): Statement {
  const leases = qualified(schema, 'leases');
  const text = `SELECT EXISTS (
    SELECT 1 FROM (
${from.sql}
    ) AS c
    WHERE NOT EXISTS (
      SELECT 1 FROM ${leases} l WHERE l.key = c.key::text AND l.expires_at > clock_timestamp()
    )
  ) AS free,
  (SELECT extract(epoch FROM min(l.expires_at) - clock_timestamp()) * 1000
     FROM ${leases} l WHERE l.expires_at > clock_timestamp())::float8 AS next_expiry_ms`;
  return { text, values: [...from.parameters] };
}

/** The same for a list of keys: any of them free, and the next expiry among theirs. @internal */
export function probeKeysStatement(schema: string, keys: readonly string[]): Statement {
  const leases = qualified(schema, 'leases');
  const text = `SELECT EXISTS (
    SELECT 1 FROM unnest($1::text[]) AS u(k)
    WHERE NOT EXISTS (
      SELECT 1 FROM ${leases} l WHERE l.key = u.k AND l.expires_at > clock_timestamp()
    )
  ) AS free,
  (SELECT extract(epoch FROM min(l.expires_at) - clock_timestamp()) * 1000
     FROM ${leases} l
     WHERE l.key = ANY ($1::text[]) AND l.expires_at > clock_timestamp())::float8 AS next_expiry_ms`;
  return { text, values: [keys] };
}
