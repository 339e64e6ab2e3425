// Compile-time checks, run by `npm run typecheck`: what `xactLock`'s `trx` and `claim`'s `from`
// accept — pg clients and Kysely transactions, Kysely queries and `sql` fragments.
import type { Kysely, Transaction as KyselyTransaction } from 'kysely';
import { sql } from 'kysely';
import type pg from 'pg';
import type { PgFence } from '../../src/index.js';

interface Db {
  jobs: { key: string; state: string };
}

export async function accepted(
  fence: PgFence,
  client: pg.PoolClient,
  plain: pg.Client,
  db: Kysely<Db>,
  trx: KyselyTransaction<Db>,
): Promise<void> {
  await fence.xactLock(client, 'k');
  await fence.xactLock(plain, 'k');
  await fence.xactLock(trx, 'k');
  await fence.claim({ from: db.selectFrom('jobs').select('key'), limit: 1 });
  await fence.claim({ from: sql`SELECT key FROM jobs`, limit: 1 });
  await fence.claim({ from: { sql: 'SELECT $1::text AS key', parameters: ['a'] }, limit: 1 });
  // @ts-expect-error -- a string is not a query
  await fence.claim({ from: 'SELECT key FROM jobs', limit: 1 });
  // A Kysely instance outside a transaction type-checks too (it has executeQuery); at run time
  // xactLock refuses it with NotInTransactionError.
}
