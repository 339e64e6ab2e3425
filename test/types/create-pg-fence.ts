// Compile-time checks, run by `npm run typecheck`: a PgFence needs exactly one connection.
import pg from 'pg';
import { createPgFence } from '../../src/index.js';

export function connections(pool: pg.Pool): void {
  createPgFence({ pool });
  createPgFence({ connectionString: 'postgres://localhost/db', schema: 'app_locks' });
  // @ts-expect-error -- no connection
  createPgFence({});
  // @ts-expect-error -- no connection, only settings
  createPgFence({ schema: 'pgfence', ttlMs: 1_000 });
  // @ts-expect-error -- two connections
  createPgFence({ pool, connectionString: 'postgres://localhost/db' });
}
