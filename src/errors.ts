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
  | 'CLOSED';

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
