import { performance } from 'node:perf_hooks';
import { sqlState } from '../db/errors.js';
import { DeadlockError } from '../errors.js';
import type { LockMode } from '../options.js';
import type { AdvisorySession, BatchOp, SoloStatement } from './advisory-session.js';
import { GUARD } from './session-identity.js';
import { waitThroughTurnstile } from './turnstile.js';
import { settle } from '../util/settle.js';

/**
 * The wait itself: `pg_advisory_lock` blocks in the server's lock queue, which is FIFO and
 * grants the key to its head at the very release, so a released key reaches the waiter of
 * another process in about a round trip and goes round the waiting processes in turn (a
 * poller, by contrast, loses nearly every race to the releaser re-taking at once).
 * `lock_timeout` bounds the wait in the server too; the CASE sets it before the lock is asked.
 * Both run only on the session's own backend (`GUARD`: elsewhere `ok` is null and nothing ran).
 * A shared wait first waits for, and passes, the key's turnstile (see turnstile.ts).
 */
const WAIT_SQL = {
  exclusive: `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  (SELECT CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN pg_advisory_lock($1::int8) IS NULL END
    WHERE ${GUARD}) AS ok`,
  shared: `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  (SELECT CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN
    ${waitThroughTurnstile('$1::int8', '$2', 'pg_advisory_lock_shared($1::int8) IS NULL')} END
    WHERE ${GUARD}) AS ok`,
};
/**
 * Waits for a release without keeping the key: granted in queue order and given back in the
 * same statement (for `lockAll`, which must hold nothing while it waits).
 */
const PASS_SQL = {
  exclusive: `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  (SELECT CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN
    CASE WHEN pg_advisory_lock($1::int8) IS NULL THEN false ELSE pg_advisory_unlock($1::int8) END END
    WHERE ${GUARD}) AS ok`,
  shared: `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  (SELECT CASE WHEN set_config('lock_timeout', $2, false) IS NOT NULL THEN
    ${waitThroughTurnstile(
      '$1::int8',
      '$2',
      'CASE WHEN pg_advisory_lock_shared($1::int8) IS NULL THEN false ELSE pg_advisory_unlock_shared($1::int8) END',
    )} END
    WHERE ${GUARD}) AS ok`,
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
  /** 'pass': only wait for the key to be released, and keep nothing (the session is freed). */
  then?: 'hold' | 'pass';
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
  // What a grant that races a refusal leaves on the session: the key, and for a shared wait the
  // key's turnstile it passes. The session runs this first after a refusal; so does giveBack.
  const undo: { op: BatchOp; id: bigint }[] = [
    { op: unlock, id },
    ...(mode === 'shared' ? [{ op: 'unlock-turnstile-shared' as const, id }] : []),
  ];
  const giveBack = (): Promise<unknown> => Promise.all(undo.map((u) => session.run(u.op, u.id)));
  const pass = wait.then === 'pass';
  const statement: SoloStatement<true> = {
    name: `pgfence_advisory_${pass ? 'pass' : 'wait'}_${mode}`,
    text: (pass ? PASS_SQL : WAIT_SQL)[mode],
    values: [id.toString(), timeout],
    blocking: true,
    undo,
    read: () => true,
  };
  const attempt = session.solo(statement);
  const outcome = await settle(attempt, deadline, signal);
  if (outcome.kind === 'done') {
    if (pass) wait.free(true);
    return 'granted';
  }
  if (outcome.kind === 'failed') {
    // Refused (lock_timeout, a cancel, a deadlock): wait for the undo queued ahead of this.
    if (session.alive) await giveBack().catch(() => false);
    wait.free(session.alive);
    const code = sqlState(outcome.error);
    if (code === '55P03') return 'timeout';
    if (code === '40P01') throw new DeadlockError(wait.key, { cause: outcome.error });
    throw outcome.error;
  }
  // Given up while the statement is out: it may yet be granted. Cancel it (a plain timeout
  // meets lock_timeout in the server at about the same moment) and see it end before the
  // caller hears back, so that by then this process neither holds the key nor waits for it in
  // the server: a waiter left in the queue would be handed the very next release.
  const cancelled =
    outcome.kind === 'aborted' ? wait.cancel(session.pid).catch(() => {}) : undefined;
  const ended = await settle(attempt, performance.now() + wait.graceMs);
  if (ended.kind === 'timeout') {
    session.destroy(new Error('an abandoned advisory wait did not end in time'));
    wait.free(false);
  } else {
    await cancelled;
    // Gives back a late grant; after a refusal it runs behind the undo, so the undo is done too.
    await giveBack().catch(() => false);
    // After a cancel the connection is not reused: the cancel's signal could otherwise still
    // interrupt its next statement.
    if (cancelled) await session.close();
    wait.free(!cancelled);
  }
  if (outcome.kind === 'aborted') throw signal!.reason;
  return 'timeout';
}
