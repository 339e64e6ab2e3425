// A real PgBouncer in front of a database of its own (so pg_locks can be read for that
// database alone, on a server other test runs share), with the pgfence schema migrated and a
// mutual-exclusion checker beside it, both reached directly, never through the pooler.
import pg from 'pg';
import { createPgFence } from '../../src/index.js';
import { createScratchDatabase, testUrl, uniqueSchema } from './database.js';
import { createChecker } from './mutex-checker.js';
import { hasPgBouncer, PGBOUNCER, startPgBouncer, type PgBouncer } from './pgbouncer.js';

export interface PoolerSetup {
  bouncer: PgBouncer;
  database: string;
  /** Through PgBouncer. */
  url: string;
  /** Straight to the server. */
  direct: string;
  schema: string;
  checker: string;
  /** Advisory locks held on the server in this database, by anyone (read directly). */
  advisoryLocks(): Promise<number>;
  /** Runs one statement straight on the server. */
  directQuery<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  cleanup(): Promise<void>;
}

/**
 * True when PgBouncer is installed; otherwise says loudly that the suite does not run here
 * (`.ci/run` installs it: `apt-get install -y pgbouncer`).
 */
export function poolerAvailable(): boolean {
  if (hasPgBouncer()) return true;
  console.warn(
    `\n!!! ${PGBOUNCER} is missing: the PgBouncer suite is SKIPPED. ` +
      'Install it (apt-get install -y pgbouncer) or point PGFENCE_PGBOUNCER at it.\n',
  );
  return false;
}

export async function startPooler(
  mode: 'session' | 'transaction',
  poolSize: number,
): Promise<PoolerSetup> {
  const scratch = await createScratchDatabase();
  const direct = scratch.url;
  const server = new URL(testUrl());
  const database = new URL(direct).pathname.slice(1);
  const schema = uniqueSchema('pooler');
  const fence = createPgFence({ connectionString: direct, schema });
  try {
    await fence.migrate();
  } finally {
    await fence.close();
  }
  const checker = await createChecker(direct);
  const bouncer = await startPgBouncer({
    serverPort: Number(server.port || 5432),
    mode,
    poolSize,
    users: [decodeURIComponent(server.username || 'postgres')],
    ...(server.password ? { serverPassword: decodeURIComponent(server.password) } : {}),
  });
  const directQuery = async <R extends pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<R[]> => {
    const client = new pg.Client({ connectionString: direct });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    bouncer,
    database,
    url: bouncer.url(database, decodeURIComponent(server.username || 'postgres')),
    direct,
    schema,
    checker,
    directQuery,
    async advisoryLocks() {
      const rows = await directQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory'
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return rows[0]!.n;
    },
    async cleanup() {
      await bouncer.stop();
      await scratch.drop();
    },
  };
}
