import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { sqlState } from '../db/errors.js';
import { SessionChangedError } from '../errors.js';

/**
 * Who a session is, as its own backend knows it. Behind a transaction-mode pooler
 * (PgBouncer `pool_mode = transaction`) each statement of a client connection may run on
 * another server connection, and the session state — advisory locks, prepared statements,
 * settings — stays on the server connection, for whichever client lands there next. So a
 * session proves in every statement that it runs on its own backend: the backend pid it opened
 * on, and a random marker it set there at open (a placeholder setting, which only that backend
 * carries; a reused pid cannot fake it). On any other backend the statement takes and gives
 * back nothing: its lock calls sit under a one-time filter on this guard, which PostgreSQL
 * tests before the rows that call them are produced.
 * @internal
 */
export const MARKER_SETTING = 'pgfence.session';

/** The guard on `$3` (pid) and `$4` (marker): every session statement takes those two last. */
export const GUARD = `(pg_backend_pid() = $3::int4 AND current_setting('${MARKER_SETTING}', true) = $4::text)`;

/**
 * Claims the backend for a new session: sets the marker only if no other session's marker is
 * there and the backend holds no advisory lock (a pooled backend that serves another client's
 * session, or keeps locks a client left behind). `marker` comes back null otherwise.
 */
const OPEN_SQL = `SELECT pg_backend_pid() AS pid,
  (SELECT set_config('${MARKER_SETTING}', $1::text, false)
    WHERE coalesce(current_setting('${MARKER_SETTING}', true), '') = ''
      AND NOT EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid())) AS marker`;

/**
 * Releases every advisory lock of the backend that carries `$1` and clears the marker, on
 * that backend only; elsewhere it does nothing. `mine` says which it was.
 */
export const RELEASE_SQL = `SELECT (SELECT count(*) FROM (
    SELECT pg_advisory_unlock_all() AS unlocked, set_config('${MARKER_SETTING}', '', false) AS cleared
     WHERE current_setting('${MARKER_SETTING}', true) = $1::text) AS released) = 1 AS mine`;

/** A new marker: 96 random bits, as hex. */
export function newMarker(): string {
  return randomBytes(12).toString('hex');
}

/**
 * Claims the backend `client` reaches for a session with `marker`; returns its pid. A backend
 * already claimed, or holding advisory locks, is a pooler sign: `SessionChangedError`.
 */
export async function claimBackend(
  client: pg.Client,
  marker: string,
  timeoutMs: number,
): Promise<number> {
  const { rows } = await client.query<{ pid: number; marker: string | null }>({
    text: OPEN_SQL,
    values: [marker],
    query_timeout: timeoutMs,
  } as pg.QueryConfig);
  const row = rows[0]!;
  if (row.marker !== marker) {
    throw sessionChanged(
      `backend pid ${row.pid} already serves another session or holds advisory locks`,
    );
  }
  return row.pid;
}

/**
 * What says that a statement reached another backend than the session's: its prepared
 * statement is missing there (26000), or already prepared there by another client (42P05), or
 * the pooler itself refused it on a connection it kept open (08P01 as a plain error). A FATAL
 * 08P01 is the pooler ending the connection (PgBouncer's KILL sends "database removed"): the
 * session is lost then, as for any ended connection, and a new one may be opened.
 */
export function changeSign(error: unknown): string | undefined {
  const code = sqlState(error);
  if (code === '26000') return 'its prepared statement is missing on the backend it reached';
  if (code === '42P05') return 'another client prepared its statement on the backend it reached';
  if (code === '08P01' && isServerError(error)) return 'the pooler refused its statement';
  return undefined;
}

/** An error the server sent on a connection that lives on (not FATAL, not a socket error). */
export function isServerError(error: unknown): boolean {
  const severity = (error as { severity?: unknown } | null)?.severity;
  return sqlState(error) !== undefined && severity !== 'FATAL' && severity !== 'PANIC';
}

/** The error for a session that is not one session any more. */
export function sessionChanged(what: string, cause?: unknown): SessionChangedError {
  return new SessionChangedError(
    `the advisory session is no longer one session (${what}): a transaction-mode pooler sits ` +
      'in between, and session locks cannot work through it (use leases or xactLock there, or ' +
      'give session locks a direct or session-pooled connection)',
    { cause },
  );
}
