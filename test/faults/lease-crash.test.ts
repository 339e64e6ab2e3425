// Fencing tokens survive a server crash: with the postmaster SIGKILLed in the middle of a
// stream of acquisitions and the server restarted, every token issued afterwards is larger
// than every token issued before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type PgFence } from '../../src/index.js';
import { startEmbeddedServer, type OwnServer } from '../support/embedded-server.js';

describe('a server crash', () => {
  let server: OwnServer;
  beforeAll(async () => {
    server = await startEmbeddedServer({ maxConnections: 50 });
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('never makes a token go back', async () => {
    const schema = 'crash';
    const before = createPgFence({ connectionString: server.url, schema, onError: () => {} });
    await before.migrate();
    const issued: bigint[] = [];
    let stop = false;
    const acquirer = async (fence: PgFence, id: number) => {
      let i = 0;
      while (!stop) {
        i += 1;
        try {
          const lease = await fence.lease(`k${id}-${i % 3}`, { ttlMs: 60_000, waitMs: 5_000 });
          // Only tokens the server confirmed count as issued.
          issued.push(lease.token);
          await lease.release().catch(() => {});
        } catch {
          if (stop) return;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const loops = [1, 2, 3, 4].map((id) => acquirer(before, id));
    await new Promise((r) => setTimeout(r, 1_500));
    await server.crash();
    stop = true;
    await Promise.all(loops);
    await before.close();
    expect(issued.length).toBeGreaterThan(20);
    const maxBefore = issued.reduce((a, b) => (a > b ? a : b));

    await server.restart();
    const after = createPgFence({ connectionString: server.url, schema });
    try {
      const tokens: bigint[] = [];
      for (let i = 0; i < 10; i += 1) {
        const leases = await Promise.all(['a', 'b', 'c'].map((k) => after.lease(`${k}${i}`)));
        for (const lease of leases) tokens.push(lease.token);
        await Promise.all(leases.map((l) => l.release()));
      }
      const minAfter = tokens.reduce((a, b) => (a < b ? a : b));
      expect(minAfter > maxBefore).toBe(true);
    } finally {
      await after.close();
    }
  });
});
