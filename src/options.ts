import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { defaultLockDelayMs } from './advisory/lock-delay.js';
import { InvalidArgumentError } from './errors.js';
import {
  resolveTelemetryOptions,
  type ResolvedTelemetryOptions,
  type TelemetryOptions,
} from './telemetry/telemetry-options.js';
import { refuseUnknownOptions } from './util/known-options.js';

/** Everything `createPgFence` accepts: the connection and every option, side by side. */
export type PgFenceOptions = PgFenceConnection & PgFenceSettings;

/**
 * The connection: exactly one of `pool` and `connectionString`, so that `createPgFence({})`
 * does not compile (and is refused at run time, for JavaScript callers).
 */
export type PgFenceConnection =
  | {
      /** A `pg.Pool` the caller already has. pgfence borrows clients from it and never ends it. */
      pool: pg.Pool;
      connectionString?: never;
    }
  | {
      /** A connection string; pgfence then opens its own pool and closes it in `close()`. */
      connectionString: string;
      pool?: never;
    };

/** Every option of `createPgFence` besides the connection. */
export interface PgFenceSettings {
  /** Size of the pool pgfence opens for `connectionString`. Default 10. */
  poolSize?: number;
  /** Schema holding pgfence's tables and functions: a plain lower-case identifier. Default `pgfence`. */
  schema?: string;
  /** Who holds the leases this instance takes. Default `host:pid:random`, unique per `PgFence`. */
  owner?: string;
  /** Default lease time-to-live in milliseconds. Default 30,000. */
  ttlMs?: number;
  /** Default time `lease`, `lock`, `withLease` and `withLock` wait. Default 30,000; `Infinity` waits for ever. */
  waitMs?: number;
  /**
   * How long before the database's expiry a holder stops trusting its lease. Default: the smaller
   * of 1,000 ms and a tenth of the TTL.
   */
  safetyMarginMs?: number;
  /** Auto-renewal runs every `ttl × renewFraction`. Default 1/3. */
  renewFraction?: number;
  /**
   * Longest a lease waiter sleeps before asking again when no release notification wakes it
   * (a missed notification; a holder's expiry is timed from the database anyway). Default 5,000.
   */
  pollIntervalMs?: number;
  /** How many dedicated session connections advisory locks share. Default 2. */
  advisorySessions?: number;
  /** How often an advisory session with locks is checked to be alive. Default 2,000 ms. */
  livenessIntervalMs?: number;
  /**
   * How long a new server incarnation (a promoted standby, a restart after a crash) grants no
   * advisory lock, counted from when pgfence first saw it: long enough for holders on the old
   * server, whose sockets may have gone silent, to have noticed their loss. Default
   * 2.5 × `livenessIntervalMs` (5,000 ms): a silent session is noticed within two intervals.
   * 0 turns the delay off.
   */
  lockDelayMs?: number;
  /** `application_name` of pgfence's own connections. Default `pgfence`. */
  applicationName?: string;
  /**
   * Longest wait for a database connection — opening one (its pool, advisory sessions, the
   * listener), or getting one from a busy pool, the caller's included. Default 5,000, or the
   * connection string's `connect_timeout` (seconds) when it has one.
   */
  connectTimeoutMs?: number;
  /**
   * Longest a statement that does not wait for a key may take before the call fails with
   * `UnavailableError` (a stalled network, a server that never answers). Default 10,000.
   */
  statementTimeoutMs?: number;
  /** Called with errors from background work (renewals, listeners) that no caller awaits. */
  onError?: (error: unknown) => void;
  /**
   * OpenTelemetry metrics and spans (`@opentelemetry/api`, an optional peer dependency). On by
   * default when a global meter or tracer provider is registered; keys stay out of span
   * attributes unless `includeKeys` is set.
   */
  telemetry?: TelemetryOptions;
}

/** `PgFenceOptions` after validation, with every default filled in. @internal */
export interface ResolvedOptions {
  readonly pool: pg.Pool | undefined;
  readonly connectionString: string | undefined;
  readonly poolSize: number;
  readonly schema: string;
  readonly owner: string;
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly safetyMarginMs: number | undefined;
  readonly renewFraction: number;
  readonly pollIntervalMs: number;
  readonly advisorySessions: number;
  readonly livenessIntervalMs: number;
  readonly lockDelayMs: number;
  readonly applicationName: string;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly onError: (error: unknown) => void;
  readonly telemetry: ResolvedTelemetryOptions;
}

export const DEFAULT_SCHEMA = 'pgfence';
/** Longest schema name accepted: 63 bytes is PostgreSQL's limit, less room for derived names. */
export const MAX_SCHEMA_LENGTH = 48;
/** TTLs beyond a year are refused: a lease meant to last that long is a configuration mistake. */
export const MAX_TTL_MS = 365 * 24 * 3600 * 1000;
/** Waits beyond a year (other than Infinity) are refused for the same reason. */
export const MAX_WAIT_MS = 365 * 24 * 3600 * 1000;

const KNOWN_OPTIONS = new Set<string>([
  'pool',
  'connectionString',
  'poolSize',
  'schema',
  'owner',
  'ttlMs',
  'waitMs',
  'safetyMarginMs',
  'renewFraction',
  'pollIntervalMs',
  'advisorySessions',
  'livenessIntervalMs',
  'lockDelayMs',
  'applicationName',
  'connectTimeoutMs',
  'statementTimeoutMs',
  'onError',
  'telemetry',
]);

/** Validates `createPgFence`'s options and returns them frozen, defaults filled in. */
export function resolveOptions(options: PgFenceOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(
      'createPgFence needs an options object: { pool } or { connectionString }',
    );
  }
  refuseUnknownOptions(options, KNOWN_OPTIONS, 'createPgFence');
  const { pool, connectionString } = options;
  if ((pool === undefined) === (connectionString === undefined)) {
    throw new InvalidArgumentError('pass exactly one of "pool" and "connectionString"');
  }
  if (pool !== undefined && (typeof pool !== 'object' || typeof pool.connect !== 'function')) {
    throw new InvalidArgumentError('"pool" must be a pg.Pool');
  }
  if (
    connectionString !== undefined &&
    (typeof connectionString !== 'string' || connectionString === '')
  ) {
    throw new InvalidArgumentError('"connectionString" must be a non-empty string');
  }
  const ttlMs = options.ttlMs === undefined ? 30_000 : validateTtl(options.ttlMs);
  const margin = options.safetyMarginMs;
  if (margin !== undefined && !(Number.isFinite(margin) && margin >= 0 && margin < ttlMs)) {
    throw new InvalidArgumentError(
      '"safetyMarginMs" must be a number from 0 up to (not including) ttlMs',
    );
  }
  const livenessIntervalMs = positiveInteger(
    'livenessIntervalMs',
    options.livenessIntervalMs,
    2_000,
    3_600_000,
  );
  const reportError = options.onError ?? (() => {});
  if (typeof reportError !== 'function') {
    throw new InvalidArgumentError('"onError" must be a function');
  }
  // Called from background work and wait loops: a callback that throws must stop neither.
  const onError = (error: unknown): void => {
    try {
      reportError(error);
    } catch {
      // the caller's callback failed; pgfence carries on
    }
  };
  return Object.freeze({
    pool,
    connectionString,
    poolSize: positiveInteger('poolSize', options.poolSize, 10, 1_000),
    schema: validateSchemaName(options.schema ?? DEFAULT_SCHEMA),
    owner: validateOwner(options.owner ?? defaultOwner()),
    ttlMs,
    waitMs: options.waitMs === undefined ? 30_000 : validateWait(options.waitMs),
    safetyMarginMs: margin,
    renewFraction: fraction('renewFraction', options.renewFraction, 1 / 3),
    pollIntervalMs: positiveInteger('pollIntervalMs', options.pollIntervalMs, 5_000, 3_600_000),
    advisorySessions: positiveInteger('advisorySessions', options.advisorySessions, 2, 64),
    livenessIntervalMs,
    lockDelayMs:
      options.lockDelayMs === undefined
        ? defaultLockDelayMs(livenessIntervalMs)
        : validateLockDelay(options.lockDelayMs),
    applicationName: validateApplicationName(options.applicationName ?? 'pgfence'),
    connectTimeoutMs:
      options.connectTimeoutMs === undefined
        ? (connectTimeoutFromUrl(connectionString) ?? 5_000)
        : boundMs('connectTimeoutMs', options.connectTimeoutMs),
    statementTimeoutMs:
      options.statementTimeoutMs === undefined
        ? 10_000
        : boundMs('statementTimeoutMs', options.statementTimeoutMs),
    onError,
    telemetry: resolveTelemetryOptions(options.telemetry),
  });
}

/** A plain lower-case SQL identifier, so it never needs escaping beyond double quotes. */
export function validateSchemaName(schema: unknown): string {
  if (
    typeof schema !== 'string' ||
    !/^[a-z_][a-z0-9_]*$/.test(schema) ||
    schema.length > MAX_SCHEMA_LENGTH
  ) {
    throw new InvalidArgumentError(
      `schema must be a plain identifier (lower-case letters, digits and "_", not starting with a digit, ` +
        `at most ${MAX_SCHEMA_LENGTH} characters), got ${JSON.stringify(String(schema))}`,
    );
  }
  return schema;
}

/** A lease TTL in milliseconds: finite, positive, at most a year. */
export function validateTtl(ttlMs: unknown, name = 'ttlMs'): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL_MS) {
    throw new InvalidArgumentError(
      `"${name}" must be a number of milliseconds above 0 and at most ${MAX_TTL_MS}, got ${String(ttlMs)}`,
    );
  }
  return ttlMs;
}

/** A wait in milliseconds: 0 (do not wait), a finite positive number, or Infinity. */
export function validateWait(waitMs: unknown, name = 'waitMs'): number {
  if (
    typeof waitMs !== 'number' ||
    Number.isNaN(waitMs) ||
    waitMs < 0 ||
    (waitMs > MAX_WAIT_MS && waitMs !== Infinity)
  ) {
    throw new InvalidArgumentError(
      `"${name}" must be 0, a positive number of milliseconds up to ${MAX_WAIT_MS}, or Infinity; got ${String(waitMs)}`,
    );
  }
  return waitMs;
}

/** How a lock or lease is held: `exclusive` (the default) alone, `shared` with other shared holders. */
export type LockMode = 'shared' | 'exclusive';

/** A `mode` option: `'shared'` or `'exclusive'`; undefined means exclusive. */
export function validateMode(mode: unknown, name = 'mode'): LockMode {
  if (mode === undefined) return 'exclusive';
  if (mode !== 'shared' && mode !== 'exclusive') {
    throw new InvalidArgumentError(
      `"${name}" must be "shared" or "exclusive", got ${JSON.stringify(String(mode))}`,
    );
  }
  return mode;
}

/** Most permits a semaphore may have: far beyond any real use, well inside an int4. */
export const MAX_PERMITS = 1_000_000;

/** Validates an `AbortSignal` option; undefined is allowed. */
export function validateSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('"signal" must be an AbortSignal');
  }
  return signal;
}

function validateOwner(owner: unknown): string {
  if (
    typeof owner !== 'string' ||
    owner.length === 0 ||
    owner.length > 256 ||
    owner.includes('\0')
  ) {
    throw new InvalidArgumentError('"owner" must be a non-empty string of at most 256 characters');
  }
  return owner;
}

function validateApplicationName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 63) {
    throw new InvalidArgumentError('"applicationName" must be a string of 1 to 63 characters');
  }
  return name;
}

function defaultOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** A whole number from 1 to `max`, such as a count or a batch size; `name` names the option. */
export function validateWholeNumber(value: unknown, name: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(
      `"${name}" must be a whole number from 1 to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

function positiveInteger(name: string, value: unknown, fallback: number, max: number): number {
  return value === undefined ? fallback : validateWholeNumber(value, name, max);
}

function fraction(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new InvalidArgumentError(
      `"${name}" must be a number between 0 and 1 (exclusive), got ${String(value)}`,
    );
  }
  return value;
}

/** The longest lock-delay accepted: an hour (advisory_grant_delay() refuses more as well). */
export const MAX_LOCK_DELAY_MS = 3_600_000;

function validateLockDelay(value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    value > MAX_LOCK_DELAY_MS
  ) {
    throw new InvalidArgumentError(
      `"lockDelayMs" must be 0 (off) or a number of milliseconds up to ${MAX_LOCK_DELAY_MS}, got ${String(value)}`,
    );
  }
  return value;
}

/** The largest bound accepted for a connect or statement timeout: ten minutes. */
export const MAX_BOUND_MS = 600_000;

function boundMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > MAX_BOUND_MS) {
    throw new InvalidArgumentError(
      `"${name}" must be a number of milliseconds from 1 to ${MAX_BOUND_MS}, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * libpq's `connect_timeout` (whole seconds) from a URL-style connection string: `pg` parses it
 * but never applies it, so a user's `?connect_timeout=2` would otherwise be ignored.
 */
export function connectTimeoutFromUrl(connectionString: string | undefined): number | undefined {
  if (connectionString === undefined || !/^postgres(ql)?:\/\//.test(connectionString))
    return undefined;
  let raw: string | null;
  try {
    raw = new URL(connectionString).searchParams.get('connect_timeout');
  } catch {
    return undefined;
  }
  if (raw === null) return undefined;
  const seconds = Number(raw);
  // libpq: zero, negative or not a number means "wait indefinitely"; pgfence keeps a bound.
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  return Math.min(MAX_BOUND_MS, Math.max(2_000, seconds * 1_000));
}
