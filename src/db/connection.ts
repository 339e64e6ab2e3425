import type pg from 'pg';
import { settleWithin } from '../util/timers.js';

/**
 * Drops a client's socket at once. A stalled network never answers a polite goodbye
 * (`end()` waits for the server), and a socket left open keeps the process alive.
 * @internal
 */
export function destroyConnection(client: pg.ClientBase): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
  stream?.destroy();
}

/**
 * Ends a client politely, or drops its socket if the server has not answered in `timeoutMs`
 * (a stalled network never answers a goodbye).
 * @internal
 */
export async function endWithin(client: pg.Client, timeoutMs: number): Promise<void> {
  await settleWithin(client.end(), timeoutMs);
  destroyConnection(client);
}

/**
 * Ends a client between transactions, or drops its socket if the server has not answered in
 * `timeoutMs`. `pg` answers a failed statement at the server's error, before the server is
 * ready again: a goodbye sent then reaches a pooler while its server connection is still busy,
 * and PgBouncer closes that server connection — which frees every session lock on it, whoever
 * took it (another client's, behind a transaction-mode pooler). A statement queued behind the
 * failed one is sent only once the server is ready, and answered after; the ROLLBACK also ends
 * a transaction left open (outside one it is a warning), which PgBouncer would otherwise end
 * by closing the server connection too.
 * @internal
 */
export async function endPolitely(client: pg.Client, timeoutMs: number): Promise<void> {
  const started = performance.now();
  await settleWithin(client.query('ROLLBACK'), timeoutMs);
  await endWithin(client, Math.max(1, timeoutMs - (performance.now() - started)));
}

interface PoolInternals {
  _idle?: { client: pg.PoolClient }[];
  _clients?: pg.PoolClient[];
  _remove?: (client: pg.PoolClient) => void;
}

/**
 * Removes the idle clients of a pool pgfence owns (all of its clients with `all`), their sockets
 * dropped. pg.Pool has no public way to do this; the internals are checked before use, and
 * without them this does nothing (the pool then finds its dead clients one failure at a time).
 * @internal
 */
export function evictIdleClients(pool: pg.Pool, all: boolean): void {
  const internals = pool as unknown as PoolInternals;
  const victims = all ? internals._clients : internals._idle?.map((item) => item.client);
  if (!Array.isArray(victims)) return;
  for (const client of [...victims]) {
    destroyConnection(client);
    if (!all && typeof internals._remove === 'function') internals._remove.call(pool, client);
  }
}
