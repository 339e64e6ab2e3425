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
 * lease are filtered out before it for the same reason. claim_leases then takes the keys
 * without waiting (see migrations/1764130000001_claim.js). The row locks last until the
 * statement's commit, by which time the leases are in place.
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
FROM ${qualified(schema, 'claim_leases')}(
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
  $${pOwner}::text, $${pTtl}::double precision, $${pLimit}::integer
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
