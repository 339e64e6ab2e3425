import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';

/**
 * Most keys in one `leaseAll`: each takes a transaction-level advisory lock, and PostgreSQL's
 * shared lock table is sized for ~64 locks per connection.
 */
export const MAX_SET_KEYS = 64;

/** Validates `leaseAll`'s keys: a non-empty array of distinct valid keys. @internal */
export function parseKeySet(keys: unknown): string[] {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new InvalidArgumentError('leaseAll needs a non-empty array of keys');
  }
  if (keys.length > MAX_SET_KEYS) {
    throw new InvalidArgumentError(
      `leaseAll takes at most ${MAX_SET_KEYS} keys at once, got ${keys.length}`,
    );
  }
  const valid = keys.map((key) => validateKey(key));
  const seen = new Set<string>();
  for (const key of valid) {
    if (seen.has(key)) throw new InvalidArgumentError(`leaseAll: the key "${key}" is asked twice`);
    seen.add(key);
  }
  return valid;
}
