import { performance } from 'node:perf_hooks';
import { sqlState } from '../db/errors.js';
import { qualified } from '../db/identifiers.js';
import { NotMigratedError } from '../errors.js';
import { settle } from '../util/settle.js';
import { atDeadline } from '../util/timers.js';
import type { AdvisorySession } from './advisory-session.js';
import { GUARD } from './session-identity.js';

/**
 * How long after its server goes silent (no reply, no reset) an advisory session's holders can
 * still believe they hold their locks. AdvisorySession probes a session with locks every
 * `livenessMs` and gives each probe `livenessMs` to answer: if the server goes silent just
 * after a probe was answered, the next probe goes out at most `livenessMs` later and the
 * session dies `livenessMs` after that, aborting every lock's signal.
 * @internal
 */
export function silentLossNoticedWithinMs(livenessMs: number): number {
  return 2 * livenessMs;
}

/**
 * The default lock-delay: the time a holder on a silent server takes to notice its loss
 * (above), plus half a liveness interval for timers that fire late on a busy event loop and
 * for the holder's reaction to its aborted signal. 5,000 ms with the default 2,000 ms interval.
 * @internal
 */
export function defaultLockDelayMs(livenessMs: number): number {
  return silentLossNoticedWithinMs(livenessMs) + livenessMs / 2;
}

/**
 * Whether this role can call the schema's advisory_grant_delay() (`$2`): the schema may predate
 * it. Like every session statement it reports whether it ran on the session's own backend.
 */
const INSTALLED_SQL = `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine, EXISTS (
  SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = $1::text AND p.proname = $2::text
     AND has_schema_privilege(n.oid, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE')
) AS installed`;
const FUNCTION = 'advisory_grant_delay';

/** SQLSTATEs of a schema that lost the function after it was seen (a down migration). */
const MISSING = new Set(['3F000', '42883']);

/**
 * Chubby's lock-delay for advisory locks: no lock is granted on a new server incarnation (a
 * promoted standby, a restart after a crash) until every holder on the old one must have
 * noticed its loss. Each session asks its own server once, when it opens and before its first
 * grant, how long that still is (`advisory_grant_delay()`, migrations/sql/0007-incarnations.up.sql,
 * which records the incarnation's first sight); callers then treat every key as held until
 * then. Asking on the session itself matters: only its own connection says which server, and
 * which incarnation, its grants come from.
 *
 * A schema migrated before the function existed (or a role that may not call it) keeps
 * session locks working, without the delay; `onError` hears of it once.
 * @internal
 */
export class LockDelay {
  readonly #schema: string;
  readonly #delayMs: number;
  readonly #onError: (error: unknown) => void;
  /** When each asked session may grant, as a `performance.now()` time. */
  readonly #gates = new WeakMap<AdvisorySession, Promise<number>>();
  readonly #known = new WeakMap<AdvisorySession, number>();
  /** The function was found once: later sessions call it without checking first. */
  #installed = false;
  #toldMissing = false;

  constructor(schema: string, delayMs: number, onError: (error: unknown) => void) {
    this.#schema = schema;
    this.#delayMs = delayMs;
    this.#onError = onError;
  }

  /** Asks `session`'s server once; rejects (the session has then ended) if the statement fails. */
  grantableAt(session: AdvisorySession): Promise<number> {
    let gate = this.#gates.get(session);
    if (!gate) {
      gate = this.#ask(session).then((at) => {
        this.#known.set(session, at);
        return at;
      });
      this.#gates.set(session, gate);
    }
    return gate;
  }

  /** When an asked session may grant; one never asked may not. */
  gateOf(session: AdvisorySession): number {
    return this.#known.get(session) ?? Infinity;
  }

  /**
   * Waits until `gate` (a `performance.now()` time) but not past `deadline` (null: do not wait).
   * True once the gate has passed; false if the deadline came first (having waited for it, as
   * for a key held all along). Rejects with the signal's reason.
   */
  async waitOut(gate: number, deadline: number | null, signal?: AbortSignal): Promise<boolean> {
    if (gate <= performance.now()) return true;
    if (deadline === null) return false;
    let stop = (): void => {};
    // atDeadline, not a plain timer: a timer may fire a fraction of a millisecond early.
    const until = new Promise<void>(
      (resolve) => (stop = atDeadline(Math.min(gate, deadline), resolve)),
    );
    const slept = await settle(until, Infinity, signal);
    if (slept.kind === 'aborted') {
      stop();
      throw signal!.reason;
    }
    return gate <= deadline;
  }

  async #ask(session: AdvisorySession): Promise<number> {
    if (this.#delayMs === 0) return 0;
    if (!this.#installed) {
      const installed = await session.solo({
        name: '',
        text: INSTALLED_SQL,
        values: [this.#schema, FUNCTION],
        read: (row) => row.installed === true,
      });
      if (!installed) {
        this.#tellMissing();
        return 0;
      }
      this.#installed = true;
    }
    try {
      const waitMs = await session.solo({
        name: '',
        // $2 is only there because a session statement has two values of its own.
        text: `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  CASE WHEN ${GUARD} AND $2::bool THEN ${qualified(this.#schema, FUNCTION)}($1::float8) END AS wait_ms`,
        values: [this.#delayMs, true],
        read: (row) => Number(row.wait_ms),
      });
      // From the answer's arrival: the server measured the wait a little before that.
      return performance.now() + waitMs;
    } catch (error) {
      if (MISSING.has(sqlState(error) ?? '')) this.#installed = false;
      throw error;
    }
  }

  #tellMissing(): void {
    if (this.#toldMissing) return;
    this.#toldMissing = true;
    this.#onError(
      new NotMigratedError(this.#schema, {
        cause: new Error(
          `${qualified(this.#schema, FUNCTION)}() is missing or not executable by ` +
            'this role: advisory locks are granted without a lock-delay after a failover or a ' +
            'restart until the schema is migrated',
        ),
      }),
    );
  }
}
