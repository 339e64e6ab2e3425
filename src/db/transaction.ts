import { InvalidArgumentError, NotInTransactionError } from '../errors.js';
import { sqlState } from './errors.js';
import { loadKysely } from '../util/optional-kysely.js';

/** Runs one statement in the caller's transaction and returns its rows. @internal */
export type TransactionRunner = (
  text: string,
  values: unknown[],
) => Promise<Record<string, unknown>[]>;

interface PgLike {
  query(text: string, values: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  /** pg ≥ 8.16: the transaction status of the last ReadyForQuery ('I', 'T' or 'E'). */
  getTransactionStatus?(): string | null;
}

interface KyselyLike {
  executeQuery(query: unknown): Promise<{ rows: Record<string, unknown>[] }>;
  readonly isTransaction?: boolean;
}

/**
 * Statements in a transaction the caller owns: a `pg` client (or anything with its `query`)
 * after BEGIN, or a Kysely Transaction. `what` names the caller's API in errors.
 * @internal
 */
export function transactionRunner(trx: unknown, what: string): TransactionRunner {
  if (trx !== null && typeof trx === 'object') {
    if (typeof (trx as KyselyLike).executeQuery === 'function') {
      const kysely = trx as KyselyLike;
      return async (text, values) => {
        // Loaded only here, so Kysely stays an optional peer dependency.
        const { CompiledQuery } = await loadKysely();
        return (await kysely.executeQuery(CompiledQuery.raw(text, values))).rows;
      };
    }
    if (typeof (trx as PgLike).query === 'function') {
      const client = trx as PgLike;
      return async (text, values) => (await client.query(text, values)).rows;
    }
  }
  throw new InvalidArgumentError(
    `${what} needs a pg client inside a transaction or a Kysely Transaction`,
  );
}

/**
 * Whether `trx` is inside a transaction block, when that can be told without a round trip:
 * a Kysely Transaction says so, and a pg client knows the status of its last ReadyForQuery.
 * Undefined when it cannot be told (a pg without getTransactionStatus, a wrapper).
 * @internal
 */
export function knownTransactionState(trx: unknown): boolean | undefined {
  if (trx === null || typeof trx !== 'object') return undefined;
  const kysely = trx as KyselyLike;
  if (typeof kysely.executeQuery === 'function') {
    return typeof kysely.isTransaction === 'boolean' ? kysely.isTransaction : undefined;
  }
  const client = trx as PgLike;
  if (typeof client.getTransactionStatus === 'function') {
    const status = client.getTransactionStatus();
    // 'E' (a failed transaction) is still one: the statement then fails with the server's error.
    if (status === 'T' || status === 'E') return true;
    if (status === 'I') return false;
  }
  return undefined;
}

/**
 * Opens a savepoint in the caller's transaction; SAVEPOINT only succeeds inside a transaction
 * block, which makes it a reliable check that takes no lock. Throws NotInTransactionError
 * (`why` explains what would go wrong outside one).
 * @internal
 */
export async function openSavepoint(
  run: TransactionRunner,
  name: string,
  why: string,
): Promise<void> {
  try {
    await run(`SAVEPOINT ${name}`, []);
  } catch (error) {
    if (sqlState(error) === '25P01') throw new NotInTransactionError(why);
    throw error;
  }
}
