import type { Database } from '../db/database.js';
import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';
import { qualified } from '../db/identifiers.js';

/**
 * True only while `token` is the live lease of `key` by the database clock. A point-in-time
 * answer: to make a write conditional on it, use `<schema>.is_current(key, token)` in the
 * write's own WHERE clause instead.
 * @internal
 */
export async function isCurrent(db: Database, key: string, token: bigint): Promise<boolean> {
  validateKey(key);
  if (typeof token !== 'bigint') {
    throw new InvalidArgumentError(`a fencing token must be a bigint, got ${typeof token}`);
  }
  if (token !== BigInt.asIntN(64, token)) {
    throw new InvalidArgumentError(`a fencing token is a 64-bit signed integer, got ${token}`);
  }
  const result = await db.query<{ current: boolean }>(
    // The SQL function knows every kind of holder (plain, shared, semaphore).
    `SELECT ${qualified(db.schema, 'is_current')}($1::text, $2::bigint) AS current`,
    [key, token.toString()],
  );
  return result.rows[0]?.current === true;
}
