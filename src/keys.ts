import { createHash } from 'node:crypto';
import { InvalidKeyError } from './errors.js';

export const MAX_KEY_LENGTH = 256;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Checks a lease or lock key and returns it. Keys are 1–256 characters (code points) of
 * well-formed text with no NUL, which PostgreSQL's `text` cannot store.
 */
export function validateKey(key: unknown): string {
  if (typeof key !== 'string') {
    throw new InvalidKeyError(key, `a key must be a string, got ${describe(key)}`);
  }
  if (key.length === 0) {
    throw new InvalidKeyError(key, 'a key must not be empty');
  }
  // Count code points, not UTF-16 units, so the limit means what a reader expects.
  let length = 0;
  for (const _ of key) {
    length += 1;
    if (length > MAX_KEY_LENGTH) {
      throw new InvalidKeyError(key, `a key must be at most ${MAX_KEY_LENGTH} characters`);
    }
  }
  if (key.includes('\0')) {
    throw new InvalidKeyError(key, 'a key must not contain a NUL character');
  }
  if (!key.isWellFormed()) {
    throw new InvalidKeyError(key, 'a key must be well-formed text (it has a lone surrogate)');
  }
  return key;
}

/** The 64-bit advisory-lock id of a key: a caller's bigint as it is, or a hash of schema and key. */
export function advisoryKeyId(namespace: string, key: string | bigint): bigint {
  if (typeof key === 'bigint') {
    if (key < INT64_MIN || key > INT64_MAX) {
      throw new InvalidKeyError(key, 'a numeric advisory key must fit in a signed 64-bit integer');
    }
    return key;
  }
  validateKey(key);
  // The NUL separator cannot occur in a key or schema name, so (namespace, key) pairs never alias.
  const digest = createHash('sha256').update(namespace).update('\0').update(key).digest();
  return digest.readBigInt64BE(0);
}

/** Checks a key that may also be a bigint (advisory locks accept both) and returns its display form. */
export function validateAdvisoryKey(key: unknown): string | bigint {
  if (typeof key === 'bigint') {
    advisoryKeyId('', key);
    return key;
  }
  return validateKey(key);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
