// A lease waiter outlives a database restart: the key is held, the server is killed and
// restarted while the waiter waits, and the waiter is granted the key once the holder's lease
// runs out — within its waitMs, without an error reaching the caller.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type PgFence } from '../../src/index.js';
import { startEmbeddedServer, type OwnServer } from '../support/embedded-server.js';
import { sleep } from '../support/wait.js';

describe('a lease waiter and a server restart', () => {
  let server: OwnServer;
  const fences: PgFence[] = [];
  beforeAll(async () => {
    server = await startEmbeddedServer({ maxConnections: 50 });
  });
  afterAll(async () => {
    await Promise.allSettled(fences.map((f) => f.close()));
    await server?.destroy();
  });

  it('keeps waiting through the restart and gets the key after the holder’s lease expires', async () => {
    const holder = createPgFence({
      connectionString: server.url,
      schema: 'restart',
      onError: () => {},
    });
    const waiter = createPgFence({
      connectionString: server.url,
      schema: 'restart',
      onError: () => {},
      pollIntervalMs: 200,
    });
    fences.push(holder, waiter);
    await holder.migrate();
    const held = await holder.lease('job', { ttlMs: 3_000 });

    const waiting = waiter.lease('job', { waitMs: 30_000, ttlMs: 10_000 });
    let settled = false;
    waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(300);
    expect(settled).toBe(false);

    await server.crash();
    await sleep(1_000); // the waiter's attempts meet a server that is down
    await server.restart();

    const lease = await waiting;
    expect(lease.key).toBe('job');
    expect(lease.token > held.token).toBe(true);
    expect(await waiter.isCurrent('job', lease.token)).toBe(true);
    expect(await held.release()).toBe(false);
    await lease.release();
  });
});
