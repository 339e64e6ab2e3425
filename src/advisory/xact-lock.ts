import { explainDbError, sqlState } from '../db/errors.js';
import { transactionRunner, type TransactionRunner } from '../db/transaction.js';
import { DeadlockError, LockTimeoutError, NotInTransactionError } from '../errors.js';
import { advisoryKeyId, validateAdvisoryKey } from '../keys.js';
import { validateWait, type ResolvedOptions } from '../options.js';
import type { XactLockOptions } from '../types.js';
import { optionsObject } from '../util/known-options.js';

const XACT_LOCK_OPTIONS = new Set(['waitMs']);

type Run = TransactionRunner;

const SAVEPOINT = 'pgfence_xact_lock';

/**
 * Sets `lock_timeout` for this wait only, waits, and puts the caller's setting back, in one
 * statement. The subqueries keep that order: a subquery with a volatile target list is never
 * flattened into its parent, so `set_config` runs before the lock and the restore after it.
 * `lock_timeout` 0 means "no limit" to PostgreSQL, which is what `Infinity` asks for.
 */
const WAIT_SQL = `SELECT set_config('lock_timeout', w.previous, true) AS restored,
       set_config('statement_timeout', current_setting('pgfence.statement_timeout'), true)
         AS restored_statement_timeout
  FROM (SELECT s.previous, pg_advisory_xact_lock($1::int8) AS locked
          FROM (SELECT current_setting('lock_timeout') AS previous,
                       set_config('lock_timeout', $2, true) AS applied) AS s) AS w`;

/**
 * Opens the savepoint and, for a wait, lifts the statement_timeout of the caller's session
 * (a role's `statement_timeout = 200ms` would otherwise cut a 2 s wait short) — stashing its
 * value in a placeholder setting that WAIT_SQL puts back. A timeout has to be set before the
 * statement it governs starts, hence a statement of its own; sent in one round trip with the
 * savepoint (simple protocol, no parameters: the values are numbers formatted here). Settings
 * made after the savepoint are undone by a rollback to it, so a failed wait restores them too.
 */
function openSql(statementTimeout: string | null): string {
  if (statementTimeout === null) return `SAVEPOINT ${SAVEPOINT}`;
  return `SAVEPOINT ${SAVEPOINT};
    SELECT set_config('pgfence.statement_timeout', current_setting('statement_timeout'), true),
           set_config('statement_timeout', '${statementTimeout}', true)`;
}

/** Room left between the lock wait and the statement bound, so lock_timeout fires first. */
const STATEMENT_MARGIN_MS = 5_000;

/** The largest `lock_timeout` PostgreSQL accepts, in milliseconds. */
const INT4_MAX = 2 ** 31 - 1;

const TRY_SQL = 'SELECT pg_try_advisory_xact_lock($1::int8) AS locked';

/**
 * `pg_advisory_xact_lock` inside the caller's transaction; released by its commit or rollback.
 *
 * The wait runs inside a savepoint, for two reasons. `SAVEPOINT` only succeeds inside a
 * transaction block, so it is a reliable "are we in a transaction?" check that takes no lock
 * when we are not. And a lock timeout or deadlock then rolls back to the savepoint instead of
 * aborting the caller's whole transaction — which also drops a lock granted in the instant the
 * timeout fired, since locks taken in a rolled-back subtransaction are released with it.
 * @internal
 */
export async function xactLock(
  options: ResolvedOptions,
  trx: unknown,
  key: string | bigint,
  lockOptions: XactLockOptions = {},
): Promise<void> {
  const display = validateAdvisoryKey(key);
  optionsObject(lockOptions, XACT_LOCK_OPTIONS, 'xactLock');
  const id = advisoryKeyId(options.schema, display);
  const waitMs = validateWait(lockOptions?.waitMs ?? options.waitMs);
  const run = runnerFor(trx);

  // lock_timeout cannot exceed INT_MAX ms (~24.8 days): a longer finite wait is capped there
  // rather than refused by the server. 0 means "no limit" to PostgreSQL.
  const lockWaitMs = Math.min(INT4_MAX, Math.max(1, Math.ceil(waitMs)));
  const lockTimeout = waitMs === Infinity ? '0' : `${lockWaitMs}ms`;
  const statementTimeout =
    waitMs === 0
      ? null
      : waitMs === Infinity
        ? '0'
        : `${Math.min(INT4_MAX, lockWaitMs + STATEMENT_MARGIN_MS)}ms`;

  try {
    await run(openSql(statementTimeout), []);
  } catch (error) {
    if (sqlState(error) === '25P01') {
      throw new NotInTransactionError(
        'xactLock needs a connection inside a transaction (after BEGIN, or a Kysely ' +
          'Transaction): outside one, the lock would be released as soon as it was taken',
      );
    }
    throw explainDbError(error, options.schema);
  }
  try {
    if (waitMs === 0) {
      const rows = await run(TRY_SQL, [id.toString()]);
      if (rows[0]?.locked !== true) throw new LockTimeoutError(String(display), 0);
    } else {
      await run(WAIT_SQL, [id.toString(), lockTimeout]);
    }
  } catch (error) {
    try {
      await run(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`, []);
      await run(`RELEASE SAVEPOINT ${SAVEPOINT}`, []);
    } catch (rollbackError) {
      // The connection itself failed: the caller's transaction is gone with it.
      throw explainDbError(rollbackError, options.schema);
    }
    if (error instanceof LockTimeoutError) throw error;
    const code = sqlState(error);
    if (code === '55P03') throw new LockTimeoutError(String(display), waitMs, { cause: error });
    if (code === '40P01') throw new DeadlockError(String(display), { cause: error });
    throw explainDbError(error, options.schema);
  }
  try {
    await run(`RELEASE SAVEPOINT ${SAVEPOINT}`, []);
  } catch (error) {
    throw explainDbError(error, options.schema);
  }
}

/** Runs SQL through a `pg` client (or anything with its `query`) or a Kysely transaction. */
function runnerFor(trx: unknown): Run {
  return transactionRunner(trx, 'xactLock');
}
