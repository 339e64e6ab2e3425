import pg from 'pg';
import type { ResolvedOptions } from '../options.js';
import { explainDbError } from './errors.js';

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
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
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
      ...(applicationName ? { application_name: applicationName } : {}),
    });
    await client.connect();
    return client;
  }

  /** Ends the pool if pgfence opened it; a caller's pool is left alone. */
  async close(): Promise<void> {
    if (this.#ownsPool) await this.pool.end();
  }
}
