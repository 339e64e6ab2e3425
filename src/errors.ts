import { isInstanceAcrossCopies, LOCK_ERROR_BRAND } from './error-brand.js';

/**
 * Every error pgfence throws on purpose is a `LockError` with a stable `code`,
 * so callers can branch on `err.code` (or `instanceof`) instead of parsing messages.
 */
export type LockErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_KEY'
  | 'LOCK_LOST'
  | 'LOCK_TIMEOUT'
  | 'DEADLOCK'
  | 'ALREADY_RELEASED'
  | 'NOT_MIGRATED'
  | 'NOT_IN_TRANSACTION'
  | 'SESSION_CHANGED'
  | 'CLOSED'
  | 'UNAVAILABLE'
  | 'READ_ONLY'
  | 'RESOURCES_EXHAUSTED'
  | 'STATEMENT_CANCELLED'
  | 'DATABASE_ERROR'
  | 'PERMITS_MISMATCH';

export class LockError extends Error {
  readonly code: LockErrorCode;

  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** `instanceof` that also recognises errors from another copy of pgfence (see `isLockError`). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstanceAcrossCopies(this, value);
  }
}

Object.defineProperty(LockError.prototype, LOCK_ERROR_BRAND, { value: true });

/** An option, TTL, wait, schema name or other argument is out of range or of the wrong type. */
export class InvalidArgumentError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** A lock key is empty, too long, not a string (or bigint, for advisory locks) or not valid text. */
export class InvalidKeyError extends LockError {
  readonly key: unknown;

  constructor(key: unknown, message: string) {
    super('INVALID_KEY', message);
    this.key = key;
  }
}

/** The lock or lease is no longer held: it expired, a renewal failed, or its session died. */
export class LockLostError extends LockError {
  readonly key: string;

  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('LOCK_LOST', message, options);
    this.key = key;
  }
}

/** Waiting for a lock or lease took longer than `waitMs`. */
export class LockTimeoutError extends LockError {
  readonly key: string;
  readonly waitMs: number;

  constructor(key: string, waitMs: number, options?: { cause?: unknown }) {
    super('LOCK_TIMEOUT', `timed out after ${waitMs} ms waiting for "${key}"`, options);
    this.key = key;
    this.waitMs = waitMs;
  }
}

/** PostgreSQL detected a deadlock (SQLSTATE 40P01) while this caller waited. */
export class DeadlockError extends LockError {
  readonly key: string;

  constructor(key: string, options?: { cause?: unknown }) {
    super('DEADLOCK', `deadlock detected while waiting for "${key}"`, options);
    this.key = key;
  }
}

/** `release()` was called on a handle that was already released. */
export class AlreadyReleasedError extends LockError {
  readonly key: string;

  constructor(key: string) {
    super('ALREADY_RELEASED', `"${key}" was already released by this handle`);
    this.key = key;
  }
}

/** The pgfence schema (or a part of it) does not exist in the database. */
export class NotMigratedError extends LockError {
  readonly schema: string;

  constructor(schema: string, options?: { cause?: unknown }) {
    super(
      'NOT_MIGRATED',
      `the pgfence schema "${schema}" is missing or out of date: run \`await fence.migrate()\` ` +
        `or \`pgfence migrate --schema ${schema}\` first`,
      options,
    );
    this.schema = schema;
  }
}

/** `xactLock` was called with a connection that is not inside a transaction. */
export class NotInTransactionError extends LockError {
  constructor(message: string) {
    super('NOT_IN_TRANSACTION', message);
  }
}

/** A dedicated session changed backend under pgfence (a transaction-mode pooler in between). */
export class SessionChangedError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SESSION_CHANGED', message, options);
  }
}

/** The `PgFence` was closed. */
export class ClosedError extends LockError {
  constructor() {
    super('CLOSED', 'this PgFence is closed');
  }
}

/**
 * The database cannot be reached, does not answer in time, or refuses connections (too many
 * connections, starting up, shutting down). Never a statement about the key: nobody can tell
 * whether it is held. `cause` is the driver's last error.
 */
export class UnavailableError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
  }
}

/** The server only accepts reads: a standby, or a primary in read-only mode (SQLSTATE 25006). */
export class ReadOnlyError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('READ_ONLY', message, options);
  }
}

/** The server ran out of a resource: disk full (53100), memory (53200), a configured limit (53400). */
export class ResourcesExhaustedError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RESOURCES_EXHAUSTED', message, options);
  }
}

/**
 * The server cancelled a statement: a role or database `statement_timeout`, or an operator's
 * `pg_cancel_backend` (SQLSTATE 57014).
 */
export class StatementCancelledError extends LockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STATEMENT_CANCELLED', message, options);
  }
}

/** Any other error from the database or the driver; `sqlState` is its SQLSTATE, when it has one. */
export class DatabaseError extends LockError {
  readonly sqlState: string | undefined;

  constructor(message: string, sqlState: string | undefined, options?: { cause?: unknown }) {
    super('DATABASE_ERROR', message, options);
    this.sqlState = sqlState;
  }
}

/**
 * A lease asked for a key with another `permits` count (or mode) than the key is held with:
 * every caller of one key must pass the same `permits` (a shared key counts as 0, so a shared
 * caller on a semaphore, or a semaphore caller on a shared key, gets this too). Waiting would
 * not help, so the call fails at once and takes nothing.
 */
export class PermitsMismatchError extends LockError {
  readonly key: string;
  /** What this caller asked for: a permit count, or 0 for `mode: 'shared'`. */
  readonly permits: number;
  /** What the key is held with now: a permit count, or 0 for shared holders. */
  readonly heldPermits: number;

  constructor(key: string, permits: number, heldPermits: number) {
    const describe = (n: number): string => (n === 0 ? 'in shared mode' : `with ${n} permits`);
    super(
      'PERMITS_MISMATCH',
      `"${key}" is held ${describe(heldPermits)}; this caller asked for it ${describe(permits)} ` +
        '(every caller of one key must pass the same permits and mode)',
    );
    this.key = key;
    this.permits = permits;
    this.heldPermits = heldPermits;
  }
}
