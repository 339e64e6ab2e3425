import { sqlState } from '../db/errors.js';
import {
  DeadlockError,
  InvalidArgumentError,
  LockTimeoutError,
  NotInTransactionError,
} from '../errors.js';
import { advisoryKeyId, validateAdvisoryKey } from '../keys.js';
import { validateWait, type ResolvedOptions } from '../options.js';
import type { XactLockOptions } from '../types.js';

type Run = (text: string, values: unknown[]) => Promise<Record<string, unknown>[]>;

const SAVEPOINT = 'pgfence_xact_lock';

/**
 * Sets `lock_timeout` for this wait only, waits, and puts the caller's setting back, in one
 * statement. The subqueries keep that order: a subquery with a volatile target list is never
 * flattened into its parent, so `set_config` runs before the lock and the restore after it.
 * `lock_timeout` 0 means "no limit" to PostgreSQL, which is what `Infinity` asks for.
 */
const WAIT_SQL = `SELECT set_config('lock_timeout', w.previous, true) AS restored
  FROM (SELECT s.previous, pg_advisory_xact_lock($1::int8) AS locked
          FROM (SELECT current_setting('lock_timeout') AS previous,
                       set_config('lock_timeout', $2, true) AS applied) AS s) AS w`;

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
  const id = advisoryKeyId(options.schema, display);
  const waitMs = validateWait(lockOptions?.waitMs ?? options.waitMs);
  const run = runnerFor(trx);

  try {
    await run(`SAVEPOINT ${SAVEPOINT}`, []);
  } catch (error) {
    if (sqlState(error) === '25P01') {
      throw new NotInTransactionError(
        'xactLock needs a connection inside a transaction (after BEGIN, or a Kysely ' +
          'Transaction): outside one, the lock would be released as soon as it was taken',
      );
    }
    throw error;
  }
  try {
    if (waitMs === 0) {
      const rows = await run(TRY_SQL, [id.toString()]);
      if (rows[0]?.locked !== true) throw new LockTimeoutError(String(display), 0);
    } else {
      // lock_timeout cannot exceed INT_MAX ms (~24.8 days): a longer finite wait is capped there
      // rather than refused by the server.
      const timeout =
        waitMs === Infinity ? '0' : `${Math.min(INT4_MAX, Math.max(1, Math.ceil(waitMs)))}ms`;
      await run(WAIT_SQL, [id.toString(), timeout]);
    }
  } catch (error) {
    await run(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`, []);
    await run(`RELEASE SAVEPOINT ${SAVEPOINT}`, []);
    const code = sqlState(error);
    if (code === '55P03') throw new LockTimeoutError(String(display), waitMs, { cause: error });
    if (code === '40P01') throw new DeadlockError(String(display), { cause: error });
    throw error;
  }
  await run(`RELEASE SAVEPOINT ${SAVEPOINT}`, []);
}

interface PgLike {
  query(text: string, values: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

interface KyselyLike {
  executeQuery(query: unknown): Promise<{ rows: Record<string, unknown>[] }>;
}

/** Runs SQL through a `pg` client (or anything with its `query`) or a Kysely transaction. */
function runnerFor(trx: unknown): Run {
  if (trx !== null && typeof trx === 'object') {
    if (typeof (trx as KyselyLike).executeQuery === 'function') {
      const kysely = trx as KyselyLike;
      return async (text, values) => {
        // Imported only here, so Kysely stays an optional peer dependency.
        const { CompiledQuery } = await import('kysely');
        return (await kysely.executeQuery(CompiledQuery.raw(text, values))).rows;
      };
    }
    if (typeof (trx as PgLike).query === 'function') {
      const client = trx as PgLike;
      return async (text, values) => (await client.query(text, values)).rows;
    }
  }
  throw new InvalidArgumentError(
    'xactLock needs a pg client inside a transaction or a Kysely Transaction',
  );
}
