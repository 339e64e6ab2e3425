import pg from 'pg';
import type { ResolvedOptions } from '../options.js';
import { ClosedError } from '../errors.js';
import { explainDbError } from './errors.js';

/** How long a dedicated connection may take to open when the pool's settings name no limit. */
const DEDICATED_CONNECT_TIMEOUT_MS = 10_000;
/** How long close() lets requests already queued for a pooled connection get one. */
const CLOSE_DRAIN_MS = 10_000;

/**
 * pgfence's access to PostgreSQL: the pool it queries through (the caller's, or one it owns)
 * and a way to open dedicated connections (advisory sessions, LISTEN) with the same settings.
 * Every query error on pgfence's own objects goes through `explainDbError`.
 * @internal
 */
export class Database {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly #ownsPool: boolean;
  readonly #clientConfig: pg.ClientConfig;
  #closed = false;

  constructor(options: ResolvedOptions) {
    this.schema = options.schema;
    if (options.pool) {
      this.pool = options.pool;
      this.#ownsPool = false;
      // pg.Pool keeps the config it was made with; dedicated clients reuse it.
      const poolConfig = (options.pool as unknown as { options: pg.PoolConfig }).options ?? {};
      this.#clientConfig = {
        ...poolConfig,
        application_name: poolConfig.application_name ?? options.applicationName,
      };
    } else {
      this.#clientConfig = {
        connectionString: options.connectionString,
        application_name: options.applicationName,
      };
      this.pool = new pg.Pool({ ...this.#clientConfig, max: options.poolSize });
      // An idle client that dies (server restart, terminated backend) must not crash the process.
      this.pool.on('error', options.onError);
      this.#ownsPool = true;
    }
  }

  /** Runs one statement on a pooled connection. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    // Work still running when close() ended pgfence's own pool gets a typed error, not pg's
    // "Cannot use a pool after calling end on the pool".
    if (this.#closed && this.#ownsPool) throw new ClosedError();
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      if (this.#closed && this.#ownsPool) throw new ClosedError();
      throw explainDbError(error, this.schema);
    }
  }

  /**
   * A new connection outside the pool, for work that needs its own session. The caller owns
   * it: it must attach an 'error' listener and end it.
   */
  async connectDedicated(applicationName?: string): Promise<pg.Client> {
    const client = new pg.Client({
      ...this.#clientConfig,
      // pg waits for ever by default: a server that accepts the socket but never answers (a
      // stalled network) would hold the connect, and whoever awaits it, open for good.
      connectionTimeoutMillis:
        this.#clientConfig.connectionTimeoutMillis || DEDICATED_CONNECT_TIMEOUT_MS,
      ...(applicationName ? { application_name: applicationName } : {}),
    });
    await client.connect();
    return client;
  }

  /** Ends the pool if pgfence opened it; a caller's pool is left alone. */
  async close(): Promise<void> {
    if (!this.#ownsPool) return;
    this.#closed = true;
    // pg.Pool.end() drops the requests still queued for a connection without ever answering
    // them: a call made just before close() would hang for good. Let those get their
    // connection first (end() then waits for them to hand it back).
    const until = performance.now() + CLOSE_DRAIN_MS;
    while (this.pool.waitingCount > 0 && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await this.pool.end();
  }
}
