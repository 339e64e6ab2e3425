import pg from 'pg';
import { connectTimeoutFromUrl } from '../options.js';
import { bounded } from './bounded.js';
import { createPgFence, UnavailableError, type PgFence, type PgFenceOptions } from '../index.js';

/** How long closing may take: a database that stopped answering must not keep the command alive. */
const CLOSE_MS = 3_000;
/** The connect bound of the CLI's pool, as the library's default. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** How long the start-up probe waits for the database's answer once connected. */
const PROBE_STATEMENT_MS = 5_000;

/**
 * Checks that the database answers at all, within the connect bound: a command that would wait
 * for a key for ever must not start by waiting for ever on a database it cannot reach.
 */
export async function assertReachable(open: OpenFence): Promise<void> {
  try {
    await open.pool.query({
      text: 'SELECT 1',
      query_timeout: PROBE_STATEMENT_MS,
    } as pg.QueryConfig);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UnavailableError(`cannot reach the database: ${message}`, { cause: error });
  }
}

/** Options every database command accepts. */
export interface ConnectionFlags {
  url?: string;
  schema?: string;
}

/** Where the connection settings came from, for messages. */
export type ConnectionSource = '--url' | 'DATABASE_URL' | 'PG* environment';

/** A PgFence the CLI opened, and how to close everything it opened with it. */
export interface OpenFence {
  fence: PgFence;
  source: ConnectionSource;
  /** A pool of the CLI's own, for the few operator statements (release) and the demo's tables. */
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * The connection, in this order: `--url`, then `DATABASE_URL`, then the standard `PG*`
 * variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE…) that `pg` reads itself, as psql does.
 */
export function resolveConnection(flags: ConnectionFlags): {
  config: pg.PoolConfig;
  source: ConnectionSource;
} {
  if (flags.url) return { config: { connectionString: flags.url }, source: '--url' };
  const env = process.env.DATABASE_URL;
  if (env) return { config: { connectionString: env }, source: 'DATABASE_URL' };
  return { config: {}, source: 'PG* environment' };
}

/** Opens a pool and a PgFence over it; `close()` ends both. */
export function openFence(
  flags: ConnectionFlags,
  options: Omit<PgFenceOptions, 'pool' | 'connectionString' | 'schema'> & {
    poolSize?: number;
  } = {},
): OpenFence {
  const { config, source } = resolveConnection(flags);
  const { poolSize, ...fenceOptions } = options;
  const pool = new pg.Pool({
    ...config,
    max: poolSize ?? 4,
    application_name: options.applicationName ?? 'pgfence-cli',
    // The same bounds pgfence gives its own pools: a dead host is an exit 69, not a hang.
    connectionTimeoutMillis:
      options.connectTimeoutMs ??
      connectTimeoutFromUrl(config.connectionString) ??
      DEFAULT_CONNECT_TIMEOUT_MS,
    keepAlive: true,
  });
  // A pooled connection that dies while idle must not crash the command; the next query reports it.
  pool.on('error', () => {});
  let fence: PgFence;
  try {
    fence = createPgFence({
      pool,
      ...(flags.schema === undefined ? {} : { schema: flags.schema }),
      applicationName: 'pgfence-cli',
      ...fenceOptions,
    });
  } catch (error) {
    // The pool never connected: nothing to wait for, and the options error is what to report.
    pool.end().catch(() => {});
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    fence,
    source,
    pool,
    close: () => {
      closed ??= bounded(
        (async () => {
          await fence.close().catch(() => {});
          await pool.end().catch(() => {});
        })(),
        CLOSE_MS,
      ).then(() => {});
      return closed;
    },
  };
}
