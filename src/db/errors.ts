import {
  DatabaseError,
  LockError,
  NotMigratedError,
  ReadOnlyError,
  ResourcesExhaustedError,
  StatementCancelledError,
  UnavailableError,
} from '../errors.js';

/** SQLSTATEs that mean "the pgfence schema, table or function is not there (yet)". */
const MISSING_OBJECT_CODES = new Set([
  '3F000', // invalid_schema_name
  '42P01', // undefined_table
  '42883', // undefined_function
]);

/**
 * SQLSTATEs that mean the server cannot serve us now, whatever we ask: a statement about the
 * server, never about a key.
 */
const UNAVAILABLE_CODES = new Set([
  '57P01', // admin_shutdown (also pg_terminate_backend)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery without hot standby)
  '57P05', // idle_session_timeout ended the connection
  '25P03', // idle_in_transaction_session_timeout ended the connection
  '53300', // too_many_connections (no slot left for this role or server)
  '08P01', // protocol_violation (a pooler that lost its server)
]);

/** SQLSTATE classes worth retrying besides unavailability: a serialisation clash. */
const CLASH_CODES = new Set(['40001', '40P01']);

/** Socket-level failures from `pg` and pgfence's own bounds carry no SQLSTATE. */
const CONNECTION_FAILURE =
  /Connection terminated|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|timeout|timed out|Client has encountered a connection error|Connection ended|not queryable|socket hang up/i;

/** The SQLSTATE of a `pg` error (or of the driver error a LockError wraps), if it has one. */
export function sqlState(error: unknown): string | undefined {
  const raw = error instanceof LockError && !(error instanceof DatabaseError) ? error.cause : error;
  if (raw !== null && typeof raw === 'object' && 'code' in raw) {
    const code = (raw as { code: unknown }).code;
    if (typeof code === 'string' && code.length === 5) return code;
  }
  if (error instanceof DatabaseError) return error.sqlState;
  return undefined;
}

function isConnectionFailure(error: unknown): boolean {
  const code = sqlState(error);
  if (code !== undefined) return code.startsWith('08') || UNAVAILABLE_CODES.has(code);
  if (error !== null && typeof error === 'object' && 'code' in error) {
    // Node's system errors: ECONNREFUSED and friends.
    const errno = (error as { code: unknown }).code;
    if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) return true;
  }
  const message = error instanceof Error ? error.message : String(error);
  return CONNECTION_FAILURE.test(message);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Turns whatever a statement failed with into a `LockError`: no raw driver error leaves a
 * pgfence call. A missing pgfence object becomes `NotMigratedError` (what to run), an outage
 * `UnavailableError`, and the server conditions a caller may act on get their own classes.
 * @internal
 */
export function explainDbError(error: unknown, schema: string): LockError {
  if (error instanceof LockError) return error;
  const code = sqlState(error);
  const message = messageOf(error);
  if (code !== undefined && MISSING_OBJECT_CODES.has(code)) {
    return new NotMigratedError(schema, { cause: error });
  }
  if (isConnectionFailure(error)) {
    return new UnavailableError(`the database is unavailable: ${message}`, { cause: error });
  }
  if (code === '25006') {
    return new ReadOnlyError(
      `the database only accepts reads (a standby, or default_transaction_read_only): ${message}`,
      { cause: error },
    );
  }
  if (code !== undefined && code.startsWith('53')) {
    return new ResourcesExhaustedError(`the database ran out of resources: ${message}`, {
      cause: error,
    });
  }
  if (code === '57014') {
    return new StatementCancelledError(
      `the database cancelled the statement (statement_timeout, or pg_cancel_backend): ${message}`,
      { cause: error },
    );
  }
  return new DatabaseError(`database error: ${message}`, code, { cause: error });
}

/**
 * Errors a waiter, a renewal or the reaper may retry: the database was unavailable (connection
 * lost, restarting, no slot, a server timeout ended the session), a statement was cancelled by
 * a server timeout, or a serialisation clash. Works on raw driver errors and on LockErrors.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof UnavailableError || error instanceof StatementCancelledError) return true;
  if (error instanceof LockError && !(error instanceof DatabaseError)) return false;
  const code = sqlState(error);
  if (code !== undefined && (CLASH_CODES.has(code) || code === '57014')) return true;
  if (error instanceof DatabaseError) return false;
  return isConnectionFailure(error);
}

/** True when the error says the connection itself is gone or unusable (not the statement). */
export function isConnectionLoss(error: unknown): boolean {
  if (error instanceof UnavailableError) return true;
  if (error instanceof LockError) return false;
  return isConnectionFailure(error);
}
