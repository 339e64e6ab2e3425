import {
  DatabaseError,
  InvalidArgumentError,
  InvalidKeyError,
  LockError,
  NotMigratedError,
  ReadOnlyError,
  UnavailableError,
} from '../index.js';
import { EXIT } from './exit-codes.js';

/** An error the CLI reports as one line and a chosen exit code. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT.FAILED) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Bad usage that the argument parser cannot see (a malformed duration, a bad number). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** SQLSTATE classes and socket errors that mean "no usable database here". */
const UNAVAILABLE_STATES = /^(08|28|3D|53|57P0)/;
const UNAVAILABLE_SOCKET =
  /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|Connection terminated|connection timeout|timeout exceeded/;

/** The exit code and the one-line message for an error that ended a command. */
export function describeFailure(error: unknown): { exitCode: number; message: string } {
  if (error instanceof CliError) return { exitCode: error.exitCode, message: error.message };
  if (error instanceof InvalidArgumentError || error instanceof InvalidKeyError) {
    return { exitCode: EXIT.USAGE, message: error.message };
  }
  if (
    error instanceof NotMigratedError ||
    error instanceof UnavailableError ||
    error instanceof ReadOnlyError
  ) {
    return { exitCode: EXIT.UNAVAILABLE, message: error.message };
  }
  const code =
    error instanceof DatabaseError
      ? error.sqlState
      : error instanceof LockError
        ? undefined
        : (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (
    (typeof code === 'string' &&
      (UNAVAILABLE_STATES.test(code) || UNAVAILABLE_SOCKET.test(code))) ||
    UNAVAILABLE_SOCKET.test(message)
  ) {
    return {
      exitCode: EXIT.UNAVAILABLE,
      message: `cannot use the database: ${message || String(code)}`,
    };
  }
  if (error instanceof AggregateError && error.errors.length > 0) {
    return describeFailure(error.errors[0]);
  }
  return { exitCode: EXIT.FAILED, message: message.split('\n')[0] ?? message };
}
