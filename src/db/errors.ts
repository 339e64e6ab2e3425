import { NotMigratedError } from '../errors.js';

/** SQLSTATEs that mean "the pgfence schema, table or function is not there (yet)". */
const MISSING_OBJECT_CODES = new Set([
  '3F000', // invalid_schema_name
  '42P01', // undefined_table
  '42883', // undefined_function
]);

/** The SQLSTATE of a `pg` error, if it has one. */
export function sqlState(error: unknown): string | undefined {
  if (error !== null && typeof error === 'object' && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string' && code.length === 5) return code;
  }
  return undefined;
}

/**
 * Turns "relation/function does not exist" from a query on pgfence's own objects into the
 * `NotMigratedError` that tells the caller what to run; any other error comes back unchanged.
 * @internal
 */
export function explainDbError(error: unknown, schema: string): unknown {
  const code = sqlState(error);
  if (code !== undefined && MISSING_OBJECT_CODES.has(code)) {
    return new NotMigratedError(schema, { cause: error });
  }
  return error;
}

/** SQLSTATE classes worth retrying: the connection or server went away, or a serialisation clash. */
const RETRYABLE_CODES = new Set([
  '08000',
  '08003',
  '08006',
  '08001',
  '08004', // connection exceptions
  '57P01',
  '57P02',
  '57P03', // admin shutdown, crash shutdown, cannot connect now
  '40001',
  '40P01', // serialization failure, deadlock
  '53300', // too many connections
]);

/** Errors a background renewal or reaper may retry: connection loss, server restarts, clashes. */
export function isTransient(error: unknown): boolean {
  const code = sqlState(error);
  if (code !== undefined) return RETRYABLE_CODES.has(code);
  // Socket-level failures from `pg` carry no SQLSTATE.
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|timeout|Client has encountered a connection error/i.test(
    message,
  );
}
