import pg from 'pg';
import type { ResolvedOptions } from '../options.js';
import { ClosedError, LockError, UnavailableError } from '../errors.js';
import { explainDbError, isConnectionLoss } from './errors.js';
import { destroyConnection, evictIdleClients } from './connection.js';
import { DEDICATED_SESSION_SETTINGS } from './session-settings.js';
import { sleep } from '../util/timers.js';

/** How long close() lets requests already queued for a pooled connection get one. */
const CLOSE_DRAIN_MS = 2_000;
/** How long close() waits for the pool to end politely before dropping its sockets. */
const CLOSE_END_MS = 2_000;
/** How much later than its own pool's connect timeout pgfence gives up on a checkout itself. */
const OWN_POOL_BACKSTOP_MS = 100;
/** TCP keep-alive: a peer that vanished (host death, a silent network) is noticed by the kernel. */
const KEEPALIVE_DELAY_MS = 5_000;

/** How one statement is bounded. @internal */
export interface QueryOptions {
  /**
   * The bound of the whole call, waiting for a connection included. Default: the connect
   * bound for the connection, then `statementTimeoutMs` for the statement.
   */
  timeoutMs?: number;
  /**
   * Run on a new connection of its own, closed afterwards: a retry after a failure that may
   * have come from a dead pooled connection (a silent network keeps those looking alive).
   */
  fresh?: boolean;
}

/** A checked-out connection whose every statement is bounded and typed. @internal */
export interface BoundedClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    timeoutMs?: number,
  ): Promise<pg.QueryResult<R>>;
  /** The `pg` client itself, for a library that needs one (node-pg-migrate); its bounds are the caller's. */
  readonly raw: pg.PoolClient | pg.Client;
}

/**
 * pgfence's access to PostgreSQL, and the one way it runs a statement: the pool it queries
 * through (the caller's, or one it owns), dedicated connections (advisory sessions, LISTEN)
 * with the same settings. Every wait here is bounded — for a connection (`connectTimeoutMs`,
 * also when the caller's own pool is busy) and for a statement (`statementTimeoutMs`) — and
 * every failure comes out as a `LockError`: an outage is an `UnavailableError`, never a hang.
 * @internal
 */
export class Database {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly #ownsPool: boolean;
  readonly #clientConfig: pg.ClientConfig;
  #closed = false;

  constructor(options: ResolvedOptions) {
    this.schema = options.schema;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.statementTimeoutMs = options.statementTimeoutMs;
    const bounds = {
      connectionTimeoutMillis: options.connectTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    };
    if (options.pool) {
      this.pool = options.pool;
      this.#ownsPool = false;
      // pg.Pool keeps the config it was made with; dedicated clients reuse it, bounded.
      const poolConfig = (options.pool as unknown as { options: pg.PoolConfig }).options ?? {};
      this.#clientConfig = {
        ...poolConfig,
        ...bounds,
        application_name: poolConfig.application_name ?? options.applicationName,
      };
    } else {
      this.#clientConfig = {
        connectionString: options.connectionString,
        application_name: options.applicationName,
        ...bounds,
      };
      this.pool = new pg.Pool({ ...this.#clientConfig, max: options.poolSize });
      // An idle client that dies (server restart, terminated backend) must not crash the process.
      this.pool.on('error', options.onError);
      this.#ownsPool = true;
    }
  }

  /** Runs one statement, bounded; fails with a `LockError` (`UnavailableError` for an outage). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options: QueryOptions = {},
  ): Promise<pg.QueryResult<R>> {
    this.#assertOpen();
    const started = performance.now();
    const total = options.timeoutMs;
    if (options.fresh) {
      const client = await this.#connect(undefined, total === undefined ? undefined : total);
      try {
        return await runBounded<R>(client, text, values, this.#left(started, total));
      } catch (error) {
        destroyConnection(client);
        throw this.#explain(error);
      } finally {
        void client.end().catch(() => {});
      }
    }
    const client = await this.#checkout(total);
    try {
      const result = await runBounded<R>(client, text, values, this.#left(started, total));
      client.release();
      return result;
    } catch (error) {
      this.#discard(client, error);
      throw this.#explain(error);
    }
  }

  /**
   * Runs `fn` on one pooled connection (for work of several statements: a reaper pass, a
   * migration). The connection is destroyed if `fn` fails: it may be mid-transaction, dead, or
   * still hold a session lock.
   */
  async withClient<T>(fn: (client: BoundedClient) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const client = await this.#checkout(undefined);
    // Between its statements the connection may die (a terminated backend): the next statement
    // fails with that; an unheard 'error' event would take the process down.
    const onIdleError = (): void => {};
    client.on('error', onIdleError);
    const bounded: BoundedClient = {
      raw: client,
      query: async <R extends pg.QueryResultRow>(
        text: string,
        values?: unknown[],
        timeoutMs?: number,
      ) => {
        try {
          return await runBounded<R>(client, text, values, timeoutMs ?? this.statementTimeoutMs);
        } catch (error) {
          throw this.#explain(error);
        }
      },
    };
    try {
      const result = await fn(bounded);
      client.off('error', onIdleError);
      client.release();
      return result;
    } catch (error) {
      client.off('error', onIdleError);
      this.#discard(client, error);
      throw this.#explain(error);
    }
  }

  /**
   * A new connection outside the pool, for work that needs its own session, opened within the
   * connect bound and set up so that the server's own timeouts (`idle_session_timeout`, …)
   * cannot end it behind pgfence's back. The caller owns it: it must attach an 'error'
   * listener and end it.
   */
  async connectDedicated(applicationName?: string): Promise<pg.Client> {
    this.#assertOpen();
    const client = await this.#connect(applicationName, undefined);
    try {
      await runBounded(client, DEDICATED_SESSION_SETTINGS, [], this.statementTimeoutMs);
    } catch (error) {
      destroyConnection(client);
      throw this.#explain(error);
    }
    return client;
  }

  /**
   * A new connection outside the pool with no settings of its own, connected within the
   * connect bound (or `timeoutMs`). The caller owns it: it must attach an 'error' listener and
   * end it.
   */
  async connectFresh(timeoutMs?: number): Promise<pg.Client> {
    this.#assertOpen();
    return this.#connect(undefined, timeoutMs);
  }

  /** Ends the pool if pgfence opened it, in bounded time; a caller's pool is left alone. */
  async close(): Promise<void> {
    if (!this.#ownsPool) {
      this.#closed = true;
      return;
    }
    if (this.#closed) return;
    this.#closed = true;
    // pg.Pool.end() drops the requests still queued for a connection without ever answering
    // them: a call made just before close() would hang for good. Let those get their
    // connection first (end() then waits for them to hand it back); every statement they run
    // is bounded, so this ends.
    const until = performance.now() + CLOSE_DRAIN_MS;
    while (this.pool.waitingCount > 0 && performance.now() < until) {
      await sleep(5);
    }
    const ended = this.pool.end().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), CLOSE_END_MS);
    });
    const outcome = await Promise.race([ended.then(() => 'ended' as const), late]);
    clearTimeout(timer);
    // A stalled network never answers the goodbye: drop the sockets so nothing lingers.
    if (outcome === 'late') evictIdleClients(this.pool, true);
  }

  #assertOpen(): void {
    // Work still running when close() ended pgfence's own pool gets a typed error, not pg's
    // "Cannot use a pool after calling end on the pool".
    if (this.#closed && this.#ownsPool) throw new ClosedError();
  }

  #left(started: number, total: number | undefined): number {
    if (total === undefined) return this.statementTimeoutMs;
    return Math.max(1, Math.ceil(total - (performance.now() - started)));
  }

  #explain(error: unknown): LockError {
    if (this.#closed && this.#ownsPool && !(error instanceof LockError)) return new ClosedError();
    return explainDbError(error, this.schema);
  }

  /** A pooled client, within `timeoutMs` (default: the connect bound). */
  async #checkout(timeoutMs: number | undefined): Promise<pg.PoolClient> {
    const bound = Math.max(1, Math.min(timeoutMs ?? Infinity, this.connectTimeoutMs));
    const connecting = this.pool.connect();
    let timer: NodeJS.Timeout | undefined;
    // pgfence's own pool has the same bound and fails with the driver's own error, which is the
    // better cause; this timer is for a caller's pool, whose settings may have no bound at all.
    const backstop = this.#ownsPool && bound === this.connectTimeoutMs ? OWN_POOL_BACKSTOP_MS : 0;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const pool = this.pool;
        const state = `${pool.totalCount - pool.idleCount} in use, ${pool.waitingCount} waiting`;
        reject(
          new UnavailableError(`no database connection within ${bound} ms (pool: ${state})`, {
            cause: new Error(`timeout exceeded when trying to get a connection (${state})`),
          }),
        );
      }, bound + backstop);
    });
    let client: pg.PoolClient;
    try {
      client = await Promise.race([connecting, timeout]);
    } catch (error) {
      // A connection that arrives after we gave up goes back to the pool unused.
      connecting.then(
        (late) => late.release(),
        () => {},
      );
      throw this.#explain(error);
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  /** A new client outside the pool, connected within the connect bound (or `timeoutMs`). */
  async #connect(
    applicationName: string | undefined,
    timeoutMs: number | undefined,
  ): Promise<pg.Client> {
    const client = new pg.Client({
      ...this.#clientConfig,
      connectionTimeoutMillis: Math.max(1, Math.min(timeoutMs ?? Infinity, this.connectTimeoutMs)),
      ...(applicationName ? { application_name: applicationName } : {}),
    });
    // Until the caller owns the listeners, a dying connection must not crash the process.
    const early = (): void => {};
    client.on('error', early);
    try {
      await client.connect();
    } catch (error) {
      destroyConnection(client);
      throw this.#explain(error);
    } finally {
      client.off('error', early);
    }
    return client;
  }

  /** Gives a failed client back destroyed; after a connection loss, its idle siblings too. */
  #discard(client: pg.PoolClient, error: unknown): void {
    destroyConnection(client);
    client.release(error instanceof Error ? error : true);
    // One dead connection after a failover or a silent network usually means they all are:
    // the next statement must not pick another one and wait out its bound again.
    if (this.#ownsPool && isConnectionLoss(explainDbError(error, this.schema))) {
      evictIdleClients(this.pool, false);
    }
  }
}

/**
 * One statement on a client, given up after `timeoutMs`. A checked-out client whose connection
 * dies (a server crash sends FATAL between messages) emits 'error'; unheard, that would crash
 * the process. The query itself rejects as well.
 */
async function runBounded<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  text: string,
  values: unknown[] | undefined,
  timeoutMs: number,
): Promise<pg.QueryResult<R>> {
  const onClientError = (): void => {};
  client.on('error', onClientError);
  try {
    const bound = Number.isFinite(timeoutMs) ? Math.max(1, Math.ceil(timeoutMs)) : undefined;
    return await client.query<R>({
      text,
      values,
      ...(bound === undefined ? {} : { query_timeout: bound }),
    } as pg.QueryConfig);
  } catch (error) {
    if (error instanceof Error && /Query read timeout/.test(error.message)) {
      throw new UnavailableError(`the database did not answer within ${Math.ceil(timeoutMs)} ms`, {
        cause: error,
      });
    }
    throw error;
  } finally {
    client.off('error', onClientError);
  }
}
