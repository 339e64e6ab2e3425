import type pg from 'pg';
import type { Database } from '../db/database.js';
import { explainDbError } from '../db/errors.js';

/**
 * Runs one statement on a pooled connection, giving up after `timeoutMs` (connecting included).
 * A connection that timed out may be stalled mid-protocol, so it is destroyed, never reused.
 * Without a limit (`Infinity`) this is `db.query`.
 * @internal
 */
export async function timedQuery<R extends pg.QueryResultRow>(
  db: Database,
  text: string,
  values: unknown[],
  timeoutMs: number,
): Promise<pg.QueryResult<R>> {
  if (!Number.isFinite(timeoutMs)) return db.query<R>(text, values);
  const started = performance.now();
  const client = await connectWithin(db.pool, Math.max(1, timeoutMs));
  const remaining = Math.max(1, Math.ceil(timeoutMs - (performance.now() - started)));
  // A checked-out client whose connection dies (a server crash sends FATAL between messages)
  // emits 'error'; unheard, that would crash the process. The query itself rejects as well.
  let broken: Error | undefined;
  const onClientError = (error: Error): void => {
    broken = error;
  };
  client.on('error', onClientError);
  try {
    const result = await client.query<R>({
      text,
      values,
      query_timeout: remaining,
    } as pg.QueryConfig);
    client.off('error', onClientError);
    client.release(broken);
    return result;
  } catch (error) {
    // Whatever went wrong, this connection is suspect: let the pool open a new one.
    client.off('error', onClientError);
    client.release(error instanceof Error ? error : true);
    throw explainDbError(error, db.schema);
  }
}

async function connectWithin(pool: pg.Pool, timeoutMs: number): Promise<pg.PoolClient> {
  const connecting = pool.connect();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`connection timeout: no database connection within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([connecting, timeout]);
  } catch (error) {
    // A connection that arrives after we gave up goes back to the pool unused.
    connecting.then(
      (client) => client.release(),
      () => {},
    );
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
