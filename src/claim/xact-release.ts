import { explainDbError, sqlState } from '../db/errors.js';
import { qualified } from '../db/identifiers.js';
import {
  knownTransactionState,
  openSavepoint,
  transactionRunner,
  type TransactionRunner,
} from '../db/transaction.js';
import { InvalidArgumentError, NotInTransactionError } from '../errors.js';
import { validateKey } from '../keys.js';
import { LeaseHandle } from '../lease/lease-handle.js';
import { termId } from '../lease/lease-sql.js';
import type { Lease } from '../types.js';

/** The most leases one call may release: one statement's arrays, like a claim's batch. */
export const MAX_XACT_RELEASE = 10_000;

const NOT_IN_TRANSACTION =
  'xactRelease needs a connection inside a transaction (after BEGIN, or a Kysely Transaction): ' +
  'outside one, the leases would be released at once, without the work they guard';

const SAVEPOINT = 'pgfence_xact_release';

/**
 * Releases, in the caller's own transaction, those of `leases` that are still current (same
 * term and owner, unexpired by the database clock), and returns them, in the order given.
 *
 * One statement (`xact_release`, see migrations/1764130000004_claim_batch.js) adds nothing to
 * the caller's commit but the deleted rows: the work and the release commit together, or not
 * at all. The rows stay locked until the caller's transaction ends, so nobody can take a key
 * over before its work commits. The handles returned stop renewing and report released; the
 * others are left as they are (their own deadline or renewal settles them).
 * @internal
 */
export async function xactRelease(
  schema: string,
  owner: string,
  trx: unknown,
  leases: readonly Lease[],
): Promise<Lease[]> {
  const run = transactionRunner(trx, 'xactRelease');
  const terms = validateLeases(leases);
  await assertInTransaction(trx, run);
  if (terms.size === 0) return [];
  const keys: string[] = [];
  const tokens: string[] = [];
  for (const lease of terms.values()) {
    keys.push(lease.key);
    tokens.push(lease.token.toString());
  }
  let rows: Record<string, unknown>[];
  try {
    rows = await run(
      `SELECT key, token::text AS token
       FROM ${qualified(schema, 'xact_release')}($1::text[], $2::bigint[], $3::text)`,
      [keys, tokens, owner],
    );
  } catch (error) {
    throw explainDbError(error, schema);
  }
  const released = new Set(rows.map((row) => termId(String(row.key), String(row.token))));
  const current: Lease[] = [];
  for (const [id, lease] of terms) {
    if (!released.has(id)) continue;
    if (lease instanceof LeaseHandle && lease.owner === owner) lease.releasedInTransaction();
    current.push(lease);
  }
  return current;
}

/** Distinct terms, in the order given; a repeated term is released (and returned) once. */
function validateLeases(leases: readonly Lease[]): Map<string, Lease> {
  if (!Array.isArray(leases)) {
    throw new InvalidArgumentError('xactRelease needs an array of leases (what claim returned)');
  }
  if (leases.length > MAX_XACT_RELEASE) {
    throw new InvalidArgumentError(
      `xactRelease takes at most ${MAX_XACT_RELEASE} leases at once, got ${leases.length}`,
    );
  }
  const terms = new Map<string, Lease>();
  for (const lease of leases as unknown[]) {
    if (lease === null || typeof lease !== 'object') {
      throw new InvalidArgumentError('xactRelease needs leases: objects with a key and a token');
    }
    const { key, token } = lease as Partial<Lease>;
    validateKey(key);
    if (typeof token !== 'bigint' || token !== BigInt.asIntN(64, token)) {
      throw new InvalidArgumentError(
        `a lease's token must be a 64-bit bigint, got ${typeof token === 'bigint' ? token : typeof token}`,
      );
    }
    const id = termId(key as string, token);
    if (!terms.has(id)) terms.set(id, lease as Lease);
  }
  return terms;
}

/**
 * Outside a transaction block the DELETE would commit on its own. A Kysely Transaction and a
 * pg client tell their state without a round trip; anything else gets the savepoint check.
 */
async function assertInTransaction(trx: unknown, run: TransactionRunner): Promise<void> {
  const known = knownTransactionState(trx);
  if (known === true) return;
  if (known === false) throw new NotInTransactionError(NOT_IN_TRANSACTION);
  await openSavepoint(run, SAVEPOINT, NOT_IN_TRANSACTION);
  try {
    await run(`RELEASE SAVEPOINT ${SAVEPOINT}`, []);
  } catch (error) {
    if (sqlState(error) === '25P01') throw new NotInTransactionError(NOT_IN_TRANSACTION);
    throw error;
  }
}
