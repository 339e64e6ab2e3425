import type pg from 'pg';
import { destroyConnection, endPolitely } from '../db/connection.js';
import type { Database } from '../db/database.js';
import { sqlState } from '../db/errors.js';
import { SessionChangedError } from '../errors.js';
import type { LocalSlot } from './local-locks.js';
import { retireConnection } from './session-cleanup.js';
import {
  changeSign,
  claimBackend,
  GUARD,
  isServerError,
  newMarker,
  sessionChanged,
} from './session-identity.js';
import type { SessionLock } from './session-lock.js';
import { tryThroughTurnstile, turnstileArgs } from './turnstile.js';

/**
 * Most round trips on a session are this one statement: the queued try-locks and unlocks in
 * order, plus the backend pid. Callers that arrive while a statement is on the wire share the
 * next one, so N concurrent callers cost about one round trip, not N. The try-locks never block,
 * so nothing queued behind one waits on another key. An empty batch is the liveness probe.
 * Every op runs only on the session's own backend (`GUARD`, see session-identity.ts): `mine`
 * false means the batch landed elsewhere and did nothing.
 * A "join" is a shared try-lock on a session that already holds the key shared for another
 * caller of this process: PostgreSQL would grant it at once (locks are re-entrant per session),
 * past an exclusive waiter of another process, so it is granted only while nobody waits.
 * Shared try-locks pass the key's turnstile first (see turnstile.ts): refused while a waiting
 * exclusive `lockAll` holds it.
 */
function batchSql(withJoins: boolean): string {
  const join = withJoins
    ? `CASE WHEN EXISTS (
                   SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.classid = ((r.id >> 32) & 4294967295)::oid
                      AND l.objid = (r.id & 4294967295)::oid)
                 THEN false ELSE ${tryThroughTurnstile('r.id', 'pg_try_advisory_lock_shared(r.id)')} END`
    : 'NULL';
  return `SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
  ARRAY(SELECT CASE r.op
            WHEN 1 THEN pg_try_advisory_lock(r.id)
            WHEN 2 THEN pg_advisory_unlock(r.id)
            WHEN 3 THEN ${tryThroughTurnstile('r.id', 'pg_try_advisory_lock_shared(r.id)')}
            WHEN 4 THEN pg_advisory_unlock_shared(r.id)
            WHEN 6 THEN pg_try_advisory_lock(${turnstileArgs('r.id')})
            WHEN 7 THEN pg_advisory_unlock(${turnstileArgs('r.id')})
            WHEN 8 THEN pg_advisory_unlock_shared(${turnstileArgs('r.id')})
            ELSE ${join}
          END
          FROM unnest($1::int8[], $2::int2[]) WITH ORDINALITY AS r(id, op, n)
         WHERE ${GUARD}
         ORDER BY r.n) AS ok`;
}

/**
 * The pg_locks look-up of a join is planned anew on each call of the prepared statement (a
 * custom plan: 0.15 ms more than the whole statement without it), so batches without a join,
 * nearly all of them, use a statement without it.
 */
const BATCH_SQL = batchSql(false);
const BATCH_WITH_JOINS_SQL = batchSql(true);

/** What a batched op does; the numbers are BATCH_SQL's. @internal */
export type BatchOp =
  | 'lock'
  | 'unlock'
  | 'lock-shared'
  | 'unlock-shared'
  | 'join-shared'
  /** The key's turnstile (see turnstile.ts), tried exclusively; the id is the key's. */
  | 'lock-turnstile'
  | 'unlock-turnstile'
  | 'unlock-turnstile-shared';
const OP_CODES: Record<BatchOp, number> = {
  lock: 1,
  unlock: 2,
  'lock-shared': 3,
  'unlock-shared': 4,
  'join-shared': 5,
  'lock-turnstile': 6,
  'unlock-turnstile': 7,
  'unlock-turnstile-shared': 8,
};

/**
 * A statement that runs on its own, not batched: a blocking wait, or an all-or-nothing take of
 * several keys. `read` turns its first row into the result. Its `values` are `$1` and `$2`;
 * the session adds its pid and marker as `$3` and `$4`, and the statement must take and give
 * back nothing unless `GUARD` holds, and return it as `mine`.
 * @internal
 */
export interface SoloStatement<T> {
  name: string;
  text: string;
  values: unknown[];
  /** A blocking wait: the liveness probe stands aside while it is out (it has its own bound). */
  blocking?: boolean;
  read(row: Record<string, unknown>): T;
  /**
   * For a blocking wait: run first once it ends with lock_timeout (55P03), a cancel (57014) or
   * a deadlock (40P01). The session lives on (those end the statement, not the connection), but
   * a grant can race the refusal and stay on the session, so it is given back (the key, and a
   * turnstile the wait may have been granted on its way).
   */
  undo?: readonly { op: BatchOp; id: bigint }[];
}

/** SQLSTATEs that end a blocking wait but leave its session sound. */
const REFUSED_WAIT = new Set(['55P03', '57014', '40P01']);

/** How long a session that failed to open may take to say goodbye. */
const GOODBYE_MS = 2_000;

interface Op {
  /** null: only the round trip (liveness probe). */
  op: BatchOp | null;
  id: bigint;
  solo?: SoloStatement<unknown>;
  resolve(ok: unknown): void;
  reject(error: unknown): void;
}

/** A lock held on a session and the in-process slot it occupies. @internal */
export interface HeldLock {
  lock: SessionLock;
  slot: LocalSlot;
}

/** Why a session ended; `closed` is pgfence's own `close()`. @internal */
export type SessionEnd = { kind: 'lost'; cause: unknown } | { kind: 'closed' };

/** What a session reports to its owner. @internal */
export interface SessionHooks {
  livenessMs: number;
  onEnd(session: AdvisorySession, end: SessionEnd): void;
  /** Locks a retired session could not give back (see `#retire`). */
  onError(error: unknown): void;
}

/**
 * One dedicated connection that holds advisory locks for many callers. It ends ("dies") on the
 * first sign of trouble — an error or end of the connection, a liveness probe with no answer in
 * time, or a statement that reached another backend (a transaction-mode pooler) — and then never
 * runs another lock statement, so a lock it held can never be re-taken behind the holder's back.
 * A connection that still works is ended politely (`#retire`): its locks given back on its own
 * backend first, its goodbye sent between transactions. Dropping it mid-statement instead would
 * make PgBouncer close the server connection under it, and with it whatever session of another
 * client lives there, and that client's locks.
 * @internal
 */
export class AdvisorySession {
  readonly pid: number;
  /** This session's mark on its backend (session-identity.ts). */
  readonly marker: string;
  readonly #client: pg.Client;
  readonly #db: Database;
  readonly #livenessMs: number;
  readonly #onEnd: (session: AdvisorySession, end: SessionEnd) => void;
  readonly #onError: (error: unknown) => void;
  #retired: Promise<void> | undefined;
  #queue: Op[] = [];
  #inFlight = false;
  #ended = false;
  #probing = false;
  /** A blocking wait is on the wire: a probe queued behind it would fail the session. */
  #blocking = false;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Locks held on this session; maintained by the manager. */
  readonly held = new Set<HeldLock>();

  private constructor(
    client: pg.Client,
    db: Database,
    pid: number,
    marker: string,
    hooks: SessionHooks,
  ) {
    this.#client = client;
    this.#db = db;
    this.pid = pid;
    this.marker = marker;
    this.#livenessMs = hooks.livenessMs;
    this.#onEnd = hooks.onEnd;
    this.#onError = hooks.onError;
    client.on('error', (error) => this.#die(error));
    client.on('end', () => this.#die(new Error('the advisory session connection ended')));
    client.on('notice', () => {}); // "you don't own a lock" warnings are expected after a loss
    this.#timer = setInterval(() => this.#probe(), hooks.livenessMs);
    this.#timer.unref();
  }

  /**
   * Opens a dedicated connection and claims its backend (pid and marker). A backend that
   * another session already claimed, or that holds advisory locks, is a pooler sign:
   * `SessionChangedError`, and the connection is let go politely.
   */
  static async open(db: Database, hooks: SessionHooks): Promise<AdvisorySession> {
    const client = await db.connectDedicated();
    // Until the session owns the listeners, a dying connection must not crash the process.
    const early = (): void => {};
    client.on('error', early);
    const marker = newMarker();
    try {
      // Bounded like every statement: a server that stops answering right after the connect.
      const pid = await claimBackend(client, marker, db.statementTimeoutMs);
      return new AdvisorySession(client, db, pid, marker, hooks);
    } catch (error) {
      if (error instanceof SessionChangedError || sqlState(error) !== undefined) {
        await endPolitely(client, GOODBYE_MS);
      } else {
        destroyConnection(client);
      }
      throw error;
    } finally {
      client.off('error', early);
    }
  }

  get alive(): boolean {
    return !this.#ended;
  }

  /** A batched try-lock or unlock on this session: false if not granted (or not held). */
  run(op: BatchOp, id: bigint): Promise<boolean> {
    return this.#enqueue(op, id) as Promise<boolean>;
  }

  /** Whether this session holds `id` for any caller. */
  holds(id: bigint): boolean {
    for (const held of this.held) if (held.lock.id === id) return true;
    return false;
  }

  /** Runs `statement` alone, in turn with the batches; a failure ends the session as theirs do. */
  solo<T>(statement: SoloStatement<T>): Promise<T> {
    return this.#enqueue(null, 0n, statement as SoloStatement<unknown>) as Promise<T>;
  }

  /** Ends the session at once (a statement in doubt): the server drops what it held. */
  destroy(cause: unknown): void {
    this.#die(cause);
  }

  /** Gives back every lock of the session and ends its connection. */
  async close(): Promise<void> {
    if (this.#ended) return this.#retired;
    this.#end({ kind: 'closed' }, new Error('the advisory session was closed'));
    // A blocking wait on the wire runs on this session's own backend (its guard passed): it is
    // dropped with the connection, as before, rather than waited for.
    if (this.#blocking) {
      destroyConnection(this.#client);
      return;
    }
    await this.#retire();
  }

  #enqueue(op: BatchOp | null, id: bigint, solo?: SoloStatement<unknown>): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      if (this.#ended) {
        reject(new Error('the advisory session has ended'));
        return;
      }
      this.#queue.push({ op, id, solo, resolve, reject });
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#inFlight || this.#ended || this.#queue.length === 0) return;
    // A solo statement goes alone; batched ops go together up to the next solo one.
    const solo = this.#queue.findIndex((op) => op.solo !== undefined);
    const take = solo === 0 ? 1 : solo === -1 ? this.#queue.length : solo;
    const batch = this.#queue.splice(0, take);
    // #send settles every op of the batch itself and never rejects.
    void this.#send(batch).finally(() => {
      this.#inFlight = false;
      this.#blocking = false;
      this.#flush();
    });
  }

  async #send(batch: Op[]): Promise<void> {
    this.#inFlight = true;
    const solo = batch[0]!.solo;
    try {
      if (solo) {
        this.#blocking = solo.blocking === true;
        const { rows } = await this.#client.query<
          Record<string, unknown> & { pid: number; mine: boolean | null }
        >({
          name: solo.name,
          text: solo.text,
          values: [...solo.values, this.pid, this.marker],
        });
        const row = rows[0]!;
        if (row.mine !== true) {
          this.#changed(batch, row.pid);
          return;
        }
        batch[0]!.resolve(solo.read(row));
        return;
      }
      // One pass over the batch (this runs for every lock and unlock); probes carry no op.
      const ids: string[] = [];
      const codes: number[] = [];
      let joins = false;
      for (const op of batch) {
        if (op.op === null) continue;
        ids.push(op.id.toString());
        codes.push(OP_CODES[op.op]);
        if (op.op === 'join-shared') joins = true;
      }
      const { rows } = await this.#client.query<{
        pid: number;
        mine: boolean | null;
        ok: boolean[];
      }>({
        // Prepared once per connection: planning this statement costs more than running it.
        name: joins ? 'pgfence_advisory_batch_joins' : 'pgfence_advisory_batch',
        text: joins ? BATCH_WITH_JOINS_SQL : BATCH_SQL,
        values: [ids, codes, this.pid, this.marker],
      });
      const { pid, mine, ok } = rows[0]!;
      if (mine !== true) {
        this.#changed(batch, pid);
        return;
      }
      let i = 0;
      for (const op of batch) op.resolve(op.op === null ? true : ok[i++] === true);
    } catch (failure) {
      const undo = solo?.undo;
      if (undo && REFUSED_WAIT.has(sqlState(failure) ?? '')) {
        this.#queue.unshift(
          ...undo.map(({ op, id }) => ({ op, id, resolve: () => {}, reject: () => {} })),
        );
        batch[0]!.reject(failure);
        return;
      }
      const sign = changeSign(failure);
      const error = sign === undefined ? failure : sessionChanged(sign, failure);
      for (const op of batch) op.reject(error);
      // A statement that fails on this connection leaves its locks in doubt: end the session.
      // An error from the server leaves the connection itself sound: it is retired politely.
      if (sign !== undefined || isServerError(failure)) this.#retireWith(error);
      else this.#die(error);
    }
  }

  #changed(batch: Op[], pid: number): void {
    const error = sessionChanged(
      pid === this.pid
        ? `its backend pid ${pid} no longer carries its marker`
        : `a statement reached backend pid ${pid}, not its own ${this.pid}`,
    );
    for (const op of batch) op.reject(error);
    this.#retireWith(error);
  }

  /** Ends the session (its holders learn it now) and then retires its connection. */
  #retireWith(cause: unknown): void {
    if (this.#ended) return;
    this.#end({ kind: 'lost', cause }, cause);
    void this.#retire();
  }

  /**
   * Gives back the session's locks on its own backend and ends the connection between
   * transactions (endPolitely). The release is conditioned on the marker, so it acts on this
   * session's backend only, wherever it lands; if it lands elsewhere (a transaction-mode
   * pooler), new connections look for that backend for a few seconds
   * (session-cleanup.ts), and what they cannot reach is reported to `onError`: those locks stay
   * on that server connection, blocking their keys (never granting them twice), until the
   * pooler closes it.
   */
  #retire(): Promise<void> {
    return (this.#retired ??= retireConnection(this.#client, this.#db, this.marker, this.pid).then(
      (error) => {
        if (error) this.#onError(error);
      },
    ));
  }

  /** Checks that the connection still answers, and from the same backend, while it holds locks. */
  #probe(): void {
    // Probe while locks are held, and while a statement is out: a try-lock stuck on a stalled
    // network must fail rather than leave its caller waiting for ever.
    if (this.#ended || this.#probing || this.#blocking) return;
    if (this.held.size === 0 && !this.#inFlight) return;
    this.#probing = true;
    const timer = setTimeout(() => {
      this.#die(new Error(`the advisory session did not answer within ${this.#livenessMs} ms`));
    }, this.#livenessMs);
    timer.unref();
    // Queued like any other statement, so a connection stuck on an earlier one fails it too.
    this.#enqueue(null, 0n)
      .catch(() => {}) // a failed round trip has already ended the session
      .finally(() => {
        clearTimeout(timer);
        this.#probing = false;
      });
  }

  #die(cause: unknown): void {
    if (this.#ended) return;
    this.#end({ kind: 'lost', cause }, cause);
    destroyConnection(this.#client);
  }

  #end(end: SessionEnd, cause: unknown): void {
    this.#ended = true;
    clearInterval(this.#timer);
    const queued = this.#queue;
    this.#queue = [];
    for (const op of queued) op.reject(cause);
    this.#onEnd(this, end);
  }
}
