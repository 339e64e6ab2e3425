import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';
import { validateSignal, validateTtl, validateWait, validateWholeNumber } from '../options.js';
import type { ClaimOptions } from '../types.js';
import { refuseUnknownOptions } from '../util/known-options.js';

/** The most leases one `claim` call may take: a bigger batch holds its row locks too long. */
export const MAX_CLAIM_LIMIT = 10_000;
/** The most keys one `claim({ keys })` call may offer. */
export const MAX_CLAIM_KEYS = 100_000;

/** PostgreSQL's limit on a channel name (an identifier), in bytes. */
export const MAX_CHANNEL_BYTES = 63;

const KNOWN = new Set([
  'from',
  'keys',
  'limit',
  'ttlMs',
  'autoRenew',
  'waitMs',
  'wakeChannel',
  'signal',
]);

/** What every `claim` call has, whichever candidates it takes from. @internal */
interface ClaimCommon {
  limit: number;
  ttlMs: number;
  autoRenew: boolean;
  /** 0: one attempt. */
  waitMs: number;
  wakeChannel: string | undefined;
  signal: AbortSignal | undefined;
}

/** A `claim` call after validation. @internal */
export type ClaimRequest =
  | ({ kind: 'from'; from: unknown } & ClaimCommon)
  | ({ kind: 'keys'; keys: string[] } & ClaimCommon);

/**
 * Validates `claim`'s options before any SQL runs: exactly one of `from` and `keys`, a whole
 * `limit` from 1 to `MAX_CLAIM_LIMIT`, a valid TTL, a boolean `autoRenew`, valid keys (a
 * repeated key is offered once, at its first place), a valid wait, wake channel and signal.
 * @internal
 */
export function validateClaimRequest(options: ClaimOptions, defaultTtlMs: number): ClaimRequest {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('claim needs an options object: { from | keys, limit, ttlMs? }');
  }
  refuseUnknownOptions(options, KNOWN, 'claim');
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
  const waitMs = options.waitMs === undefined ? 0 : validateWait(options.waitMs);
  const wakeChannel = validateChannel(options.wakeChannel);
  if (wakeChannel !== undefined && waitMs === 0) {
    throw new InvalidArgumentError(
      '"wakeChannel" wakes a waiting claim: it needs "waitMs" above 0 (without it, claim returns at once)',
    );
  }
  const signal = validateSignal(options.signal);
  const common: ClaimCommon = { limit, ttlMs, autoRenew, waitMs, wakeChannel, signal };
  if (hasFrom) return { kind: 'from', from: options.from, ...common };
  return { kind: 'keys', keys: validateKeys(options.keys), ...common };
}

/** A NOTIFY channel name, as pg_notify takes it: 1 to 63 bytes, no NUL. */
function validateChannel(channel: unknown): string | undefined {
  if (channel === undefined) return undefined;
  if (
    typeof channel !== 'string' ||
    channel.length === 0 ||
    Buffer.byteLength(channel) > MAX_CHANNEL_BYTES ||
    channel.includes('\0')
  ) {
    throw new InvalidArgumentError(
      `"wakeChannel" must be a channel name of 1 to ${MAX_CHANNEL_BYTES} bytes, got ${JSON.stringify(String(channel)).slice(0, 80)}`,
    );
  }
  return channel;
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
