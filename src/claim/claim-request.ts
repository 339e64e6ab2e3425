import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';
import { validateTtl, validateWholeNumber } from '../options.js';
import type { ClaimOptions } from '../types.js';

/** The most leases one `claim` call may take: a bigger batch holds its row locks too long. */
export const MAX_CLAIM_LIMIT = 10_000;
/** The most keys one `claim({ keys })` call may offer. */
export const MAX_CLAIM_KEYS = 100_000;

const KNOWN = new Set(['from', 'keys', 'limit', 'ttlMs', 'autoRenew']);

/** A `claim` call after validation. @internal */
export type ClaimRequest =
  | { kind: 'from'; from: unknown; limit: number; ttlMs: number; autoRenew: boolean }
  | { kind: 'keys'; keys: string[]; limit: number; ttlMs: number; autoRenew: boolean };

/**
 * Validates `claim`'s options before any SQL runs: exactly one of `from` and `keys`, a whole
 * `limit` from 1 to `MAX_CLAIM_LIMIT`, a valid TTL, a boolean `autoRenew`, valid keys (a
 * repeated key is offered once, at its first place).
 * @internal
 */
export function validateClaimRequest(options: ClaimOptions, defaultTtlMs: number): ClaimRequest {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('claim needs an options object: { from | keys, limit, ttlMs? }');
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new InvalidArgumentError(`unknown claim option "${name}"`);
  }
  const hasFrom = options.from !== undefined;
  const hasKeys = options.keys !== undefined;
  if (hasFrom === hasKeys) {
    throw new InvalidArgumentError('claim needs exactly one of "from" (a query) and "keys"');
  }
  const limit = validateWholeNumber(options.limit, 'limit', MAX_CLAIM_LIMIT);
  const ttlMs = options.ttlMs === undefined ? defaultTtlMs : validateTtl(options.ttlMs);
  const autoRenew = options.autoRenew ?? false;
  if (typeof autoRenew !== 'boolean') {
    throw new InvalidArgumentError(`"autoRenew" must be a boolean, got ${typeof autoRenew}`);
  }
  if (hasFrom) return { kind: 'from', from: options.from, limit, ttlMs, autoRenew };
  return { kind: 'keys', keys: validateKeys(options.keys), limit, ttlMs, autoRenew };
}

function validateKeys(keys: unknown): string[] {
  if (!Array.isArray(keys)) {
    throw new InvalidArgumentError('"keys" must be an array of strings');
  }
  if (keys.length > MAX_CLAIM_KEYS) {
    throw new InvalidArgumentError(
      `"keys" may hold at most ${MAX_CLAIM_KEYS} keys, got ${keys.length}`,
    );
  }
  const unique = new Set<string>();
  for (const key of keys) unique.add(validateKey(key));
  return [...unique];
}
