// What every example here starts with: a pool on DATABASE_URL and a PgFence on it, its schema
// migrated. PGFENCE_SCHEMA picks another schema than "pgfence" (the tests run each example in
// a schema of its own). In your own code, import from 'pgfence' where these import from
// '../../src/'.
import pg from 'pg';
import { createPgFence, type PgFence } from '../../src/index.js';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('set DATABASE_URL to a PostgreSQL database, for example postgres://localhost/app');
  process.exit(2);
}

export const pool = new pg.Pool({ connectionString: url });
const schema = process.env.PGFENCE_SCHEMA ?? 'pgfence';

/** A PgFence of its own, as another process would have (the first one also migrates). */
export function openFence(): PgFence {
  return createPgFence({ pool, schema });
}

export async function start(): Promise<PgFence> {
  const fence = openFence();
  await fence.migrate();
  return fence;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
