// close() behind a network that stops answering (a stalled TCP proxy: no reply, no error) while
// a dedicated connection (the lease LISTEN connection, an advisory session) is still opening:
// close() must come back in bounded time, not wait for a connect that never ends.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, UnavailableError, type PgFence } from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { settledWithin } from '../support/wait.js';

describe('close() while a dedicated connection is stuck opening', () => {
  const t = useMigratedFence();
  let proxy: TcpProxy;
  let pool: pg.Pool | undefined;
  let closing: Promise<void> | undefined;

  beforeAll(async () => {
    const target = new URL(testUrl());
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
  });
  afterEach(async () => {
    // Unstick everything the test left hanging, then let it all finish.
    proxy.resume();
    proxy.cut();
    await closing;
    await pool?.end();
    pool = undefined;
    closing = undefined;
  });
  afterAll(async () => {
    await proxy.close();
  });

  /** A PgFence on a pool of the caller's (which close() leaves alone) behind the proxy. */
  const fenceBehindProxy = (): PgFence => {
    pool = new pg.Pool({ connectionString: proxy.urlFor(testUrl()), max: 4 });
    pool.on('error', () => {});
    return createPgFence({ pool, schema: t.schema, onError: () => {} });
  };

  it('a lease waiter was opening the LISTEN connection', async () => {
    const held = await t.fence.lease('listen-stalled', { ttlMs: 60_000 });
    const fence = fenceBehindProxy();
    proxy.stall();
    // The database never answered: nobody can tell whether the key is held.
    await expect(fence.lease('listen-stalled', { waitMs: 500 })).rejects.toBeInstanceOf(
      UnavailableError,
    );
    closing = fence.close();
    // Generous: the listener gives a connection 2 s to close; a hang never ends.
    expect(await settledWithin(closing, 8_000)).not.toBeNull();
    await held.release();
  });

  it('an advisory locker was opening its session', async () => {
    const fence = fenceBehindProxy();
    proxy.stall();
    await expect(fence.lock('session-stalled', { waitMs: 500 })).rejects.toBeInstanceOf(
      UnavailableError,
    );
    closing = fence.close();
    expect(await settledWithin(closing, 8_000)).not.toBeNull();
  });
});
