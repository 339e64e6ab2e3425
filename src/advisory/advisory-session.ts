import type pg from 'pg';
import type { Database } from '../db/database.js';
import { sqlState } from '../db/errors.js';
import { SessionChangedError } from '../errors.js';
import type { KeySlot } from '../lease/key-queue.js';
import type { SessionLock } from './session-lock.js';

/**
 * Every round trip on a session is this one statement: the queued try-locks (`op` true) and
 * unlocks (`op` false) in order, plus the backend pid. Callers that arrive while a statement is
 * on the wire share the next one, so N concurrent callers cost about one round trip, not N.
 * `pg_try_advisory_lock` never blocks, so nothing queued behind it waits on another key. An
 * empty batch is the liveness probe.
 */
const BATCH_SQL = `SELECT pg_backend_pid() AS pid,
  ARRAY(SELECT CASE WHEN r.op THEN pg_try_advisory_lock(r.id) ELSE pg_advisory_unlock(r.id) END
          FROM unnest($1::int8[], $2::bool[]) WITH ORDINALITY AS r(id, op, n)
         ORDER BY r.n) AS ok`;

interface Op {
  /** true: try-lock, false: unlock, null: only the round trip (liveness probe). */
  lock: boolean | null;
  id: bigint;
  resolve(ok: boolean): void;
  reject(error: unknown): void;
}

/** A lock held on a session and the in-process slot it occupies. @internal */
export interface HeldLock {
  lock: SessionLock;
  slot: KeySlot;
}

/** Why a session ended; `closed` is pgfence's own `close()`. @internal */
export type SessionEnd = { kind: 'lost'; cause: unknown } | { kind: 'closed' };

/**
 * One dedicated connection that holds advisory locks for many callers. It ends ("dies") on the
 * first sign of trouble — an error or end of the connection, a liveness probe with no answer in
 * time, or a different backend pid answering (a transaction-mode pooler) — and then never runs
 * another statement, so a lock it held can never be re-taken behind the holder's back.
 * @internal
 */
export class AdvisorySession {
  readonly pid: number;
  readonly #client: pg.Client;
  readonly #livenessMs: number;
  readonly #onEnd: (session: AdvisorySession, end: SessionEnd) => void;
  #queue: Op[] = [];
  #inFlight = false;
  #ended = false;
  #probing = false;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Locks held on this session, by lock id; maintained by the manager. */
  readonly held = new Map<bigint, HeldLock>();

  private constructor(
    client: pg.Client,
    pid: number,
    livenessMs: number,
    onEnd: (session: AdvisorySession, end: SessionEnd) => void,
  ) {
    this.#client = client;
    this.pid = pid;
    this.#livenessMs = livenessMs;
    this.#onEnd = onEnd;
    client.on('error', (error) => this.#die(error));
    client.on('end', () => this.#die(new Error('the advisory session connection ended')));
    client.on('notice', () => {}); // "you don't own a lock" warnings are expected after a loss
    this.#timer = setInterval(() => this.#probe(), livenessMs);
    this.#timer.unref();
  }

  /** Opens a dedicated connection and records its backend pid. */
  static async open(
    db: Database,
    livenessMs: number,
    onEnd: (session: AdvisorySession, end: SessionEnd) => void,
  ): Promise<AdvisorySession> {
    const client = await db.connectDedicated();
    // Until the session owns the listeners, a dying connection must not crash the process.
    const early = (): void => {};
    client.on('error', early);
    try {
      const { rows } = await client.query<{ pid: number }>({
        text: 'SELECT pg_backend_pid() AS pid',
        // Bounded like every statement: a server that stops answering right after the connect.
        query_timeout: db.statementTimeoutMs,
      } as pg.QueryConfig);
      return new AdvisorySession(client, rows[0]!.pid, livenessMs, onEnd);
    } catch (error) {
      destroy(client);
      throw error;
    } finally {
      client.off('error', early);
    }
  }

  get alive(): boolean {
    return !this.#ended;
  }

  /** `pg_try_advisory_lock(id)` on this session. */
  tryLock(id: bigint): Promise<boolean> {
    return this.#enqueue(true, id);
  }

  /** `pg_advisory_unlock(id)` on this session: false if the session did not hold it. */
  unlock(id: bigint): Promise<boolean> {
    return this.#enqueue(false, id);
  }

  /** Ends the connection; the server drops every lock it held. */
  async close(): Promise<void> {
    if (this.#ended) return;
    this.#end({ kind: 'closed' }, new Error('the advisory session was closed'));
    const ended = this.#client.end().catch(() => {});
    const timeout = new Promise((resolve) => setTimeout(resolve, 2_000).unref());
    await Promise.race([ended, timeout]);
    destroy(this.#client);
  }

  #enqueue(lock: boolean | null, id: bigint): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      if (this.#ended) {
        reject(new Error('the advisory session has ended'));
        return;
      }
      this.#queue.push({ lock, id, resolve, reject });
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#inFlight || this.#ended || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#send(batch).finally(() => {
      this.#inFlight = false;
      this.#flush();
    });
  }

  async #send(batch: Op[]): Promise<void> {
    this.#inFlight = true;
    const ops = batch.filter((op) => op.lock !== null);
    try {
      const { rows } = await this.#client.query<{ pid: number; ok: boolean[] }>({
        // Prepared once per connection: planning this statement costs more than running it.
        name: 'pgfence_advisory_batch',
        text: BATCH_SQL,
        values: [ops.map((op) => op.id.toString()), ops.map((op) => op.lock)],
      });
      const { pid, ok } = rows[0]!;
      if (pid !== this.pid) {
        const error = sessionChanged(`its backend changed from pid ${this.pid} to ${pid}`);
        for (const op of batch) op.reject(error);
        this.#die(error);
        return;
      }
      let i = 0;
      for (const op of batch) op.resolve(op.lock === null ? true : ok[i++] === true);
    } catch (failure) {
      // A statement prepared on this session that the server no longer knows: another backend.
      const error =
        sqlState(failure) === '26000'
          ? sessionChanged('its prepared statement vanished', failure)
          : failure;
      for (const op of batch) op.reject(error);
      // A statement that fails on this connection leaves its locks in doubt: end it.
      this.#die(error);
    }
  }

  /** Checks that the connection still answers, and from the same backend, while it holds locks. */
  #probe(): void {
    // Probe while locks are held, and while a statement is out: a try-lock stuck on a stalled
    // network must fail rather than leave its caller waiting for ever.
    if (this.#ended || this.#probing || (this.held.size === 0 && !this.#inFlight)) return;
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
    destroy(this.#client);
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

function sessionChanged(what: string, cause?: unknown): SessionChangedError {
  return new SessionChangedError(
    `the advisory session is no longer one session (${what}): a transaction-mode pooler sits ` +
      'in between, and session locks cannot work through it (use leases or xactLock there)',
    { cause },
  );
}

/** Drops the socket at once: a stalled network may never answer a polite goodbye. */
function destroy(client: pg.Client): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
  stream?.destroy();
}
