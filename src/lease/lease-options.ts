import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';
import {
  MAX_PERMITS,
  validateMode,
  validateSignal,
  validateTtl,
  validateWait,
  validateWholeNumber,
  type LockMode,
  type ResolvedOptions,
} from '../options.js';

/** A lease call's options after validation, defaults filled in. @internal */
export interface LeaseRequest {
  key: string;
  ttlMs: number;
  waitMs: number;
  autoRenew: boolean;
  signal: AbortSignal | undefined;
  metadata: Record<string, unknown> | undefined;
  metadataJson: string | null;
  mode: LockMode;
  /** A semaphore's permit count; null for a plain or shared lease. */
  permits: number | null;
}

const LEASE_OPTIONS = new Set([
  'ttlMs',
  'waitMs',
  'autoRenew',
  'signal',
  'metadata',
  'mode',
  'permits',
]);
const TRY_OPTIONS = new Set(['ttlMs', 'autoRenew', 'metadata', 'mode', 'permits']);

/** The safety margin for a TTL: the configured one, else min(1 s, ttl / 10). @internal */
export function marginFor(options: ResolvedOptions, ttlMs: number): number {
  return options.safetyMarginMs ?? Math.min(1_000, ttlMs / 10);
}

/** Rejects a TTL that its safety margin would use up entirely. @internal */
export function assertAboveMargin(ttlMs: number, marginMs: number): void {
  if (!(ttlMs > marginMs)) {
    throw new InvalidArgumentError(
      `"ttlMs" (${ttlMs}) must be larger than the safety margin (${marginMs} ms)`,
    );
  }
}

/**
 * Checks a lease call's key and options before anything touches the database.
 * @internal
 */
export function parseLeaseRequest(
  key: unknown,
  raw: unknown,
  defaults: ResolvedOptions,
  kind: { waits: boolean; autoRenew: boolean; permits?: boolean },
): LeaseRequest {
  const validKey = validateKey(key);
  if (raw !== undefined && (raw === null || typeof raw !== 'object' || Array.isArray(raw))) {
    throw new InvalidArgumentError('lease options must be an object');
  }
  const options = (raw ?? {}) as Record<string, unknown>;
  const known = kind.waits ? LEASE_OPTIONS : TRY_OPTIONS;
  for (const name of Object.keys(options)) {
    if (name === 'permits' && kind.permits === false) {
      throw new InvalidArgumentError('"permits" does not apply to leaseAll');
    }
    if (!known.has(name)) {
      throw new InvalidArgumentError(
        kind.waits || !LEASE_OPTIONS.has(name)
          ? `unknown lease option "${name}"`
          : `"${name}" does not apply to tryLease, which never waits`,
      );
    }
  }
  const ttlMs = options.ttlMs === undefined ? defaults.ttlMs : validateTtl(options.ttlMs);
  assertAboveMargin(ttlMs, marginFor(defaults, ttlMs));
  const waitMs = options.waitMs === undefined ? defaults.waitMs : validateWait(options.waitMs);
  const autoRenew = options.autoRenew ?? kind.autoRenew;
  if (typeof autoRenew !== 'boolean') {
    throw new InvalidArgumentError('"autoRenew" must be true or false');
  }
  const signal = validateSignal(options.signal);
  const { metadata, metadataJson } = parseMetadata(options.metadata);
  const mode = validateMode(options.mode);
  const permits =
    options.permits === undefined
      ? null
      : validateWholeNumber(options.permits, 'permits', MAX_PERMITS);
  if (permits !== null && mode === 'shared') {
    throw new InvalidArgumentError(
      '"permits" and mode "shared" do not combine: a semaphore\'s permits are its shares',
    );
  }
  return {
    key: validKey,
    ttlMs,
    waitMs,
    autoRenew,
    signal,
    metadata,
    metadataJson,
    mode,
    permits,
  };
}

function parseMetadata(metadata: unknown): {
  metadata: Record<string, unknown> | undefined;
  metadataJson: string | null;
} {
  if (metadata === undefined) return { metadata: undefined, metadataJson: null };
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new InvalidArgumentError('"metadata" must be a plain object');
  }
  let json: string;
  try {
    json = JSON.stringify(metadata);
  } catch (error) {
    throw new InvalidArgumentError('"metadata" must be JSON-serialisable', { cause: error });
  }
  if (json.includes('\\u0000')) {
    throw new InvalidArgumentError('"metadata" must not contain NUL characters');
  }
  return { metadata: metadata as Record<string, unknown>, metadataJson: json };
}
