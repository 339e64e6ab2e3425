import { performance } from 'node:perf_hooks';
import { sqlState } from '../db/errors.js';
import { DeadlockError } from '../errors.js';
import type { LockMode } from '../options.js';
import type { AdvisorySession, SoloStatement } from './advisory-session.js';
import { settle } from './settle.js';

/**
 * The wait itself: `pg_advisory_lock` blocks in the server's lock queue, which is FIFO and
 * grants the key to its head at the very release, so a released key reaches the waiter of
 * another process in about a round trip and goes round the waiting processes in turn (a
 * poller, by contrast, loses nearly every race to the releaser re-taking at once).
 * `lock_timeout` bounds the wait in the server too; the CASE sets it before the lock is asked.
 */
const WAIT_SQL = {
  exclusive: `SELECT pg_backend_pid() AS pid,
  CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN pg_advisory_lock($1::int8) IS NULL END AS ok`,
  shared: `SELECT pg_backend_pid() AS pid,
  CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN pg_advisory_lock_shared($1::int8) IS NULL END AS ok`,
};
/** lock_timeout is an int of milliseconds: longer waits are bounded by the client alone. */
const MAX_LOCK_TIMEOUT_MS = 2 ** 31 - 1;

/** What a blocking wait needs from its caller. @internal */
export interface ServerWait {
  session: AdvisorySession;
  key: string;
  id: bigint;
  mode: LockMode;
  /** A `performance.now()` time, or Infinity. */
  deadline: number;
  signal: AbortSignal | undefined;
  /** How long an abandoned wait may take to answer before its connection is dropped. */
  graceMs: number;
  /** Interrupts the session's statement (`pg_cancel_backend`), for a waiter that gives up. */
  cancel(pid: number): Promise<unknown>;
  /**
   * Called once the session neither holds nor waits for the key any more, unless the wait was
   * granted (the lock then lives on the session until it is released). `reusable` is false
   * after a cancel: its signal could still reach the session's next statement.
   */
  free(reusable: boolean): void;
}

/**
 * Blocks on `session` until the key is granted ('granted'), the deadline passes ('timeout') or
 * the signal aborts (rejects with its reason). A deadlock rejects with `DeadlockError`; a
 * failed session with its error. A wait given up while its statement is out is cancelled in
 * the server, and a grant that races the give-up is released before `free()` is called.
 * @internal
 */
export async function waitInServer(wait: ServerWait): Promise<'granted' | 'timeout'> {
  const { session, id, mode, deadline, signal } = wait;
  const left = deadline - performance.now();
  if (left <= 0) {
    wait.free(true);
    return 'timeout';
  }
  const timeout = left > MAX_LOCK_TIMEOUT_MS ? '0' : `${Math.max(1, Math.ceil(left))}ms`;
  const unlock = mode === 'shared' ? 'unlock-shared' : 'unlock';
  const statement: SoloStatement<true> = {
    name: `pgfence_advisory_wait_${mode}`,
    text: WAIT_SQL[mode],
    values: [id.toString(), timeout],
    blocking: true,
    undo: { op: unlock, id },
    read: () => true,
  };
  const attempt = session.solo(statement);
  const outcome = await settle(attempt, deadline, signal);
  if (outcome.kind === 'done') return 'granted';
  if (outcome.kind === 'failed') {
    wait.free(session.alive);
    const code = sqlState(outcome.error);
    if (code === '55P03') return 'timeout'; // lock_timeout: the undo already ran first
    if (code === '40P01') throw new DeadlockError(wait.key, { cause: outcome.error });
    throw outcome.error;
  }
  // Given up while the statement is out: it may yet be granted. Cancel it (a plain timeout
  // meets lock_timeout in the server at about the same moment), give back a late grant, and
  // drop the connection if no answer comes in time.
  const cancelled =
    outcome.kind === 'aborted' ? wait.cancel(session.pid).catch(() => {}) : undefined;
  const guard = setTimeout(
    () => session.destroy(new Error('an abandoned advisory wait did not end in time')),
    wait.graceMs,
  );
  guard.unref();
  attempt
    .then(() => (cancelled ? false : session.run(unlock, id)))
    .catch(() => false)
    .then(() => cancelled)
    .finally(() => {
      clearTimeout(guard);
      // After a cancel the connection is dropped rather than reused (the server frees a late
      // grant with it): the cancel's signal could otherwise interrupt its next statement.
      if (cancelled) void session.close();
      wait.free(!cancelled);
    });
  if (outcome.kind === 'aborted') throw signal!.reason;
  return 'timeout';
}
