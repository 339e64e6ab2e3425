// A server killed with SIGKILL and restarted under held and awaited advisory locks.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, LockLostError, type PgFence } from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { startEmbeddedServer, type OwnServer } from '../support/embedded-server.js';

describe('advisory locks across a server crash', () => {
  let server: OwnServer;

  beforeAll(async () => {
    server = await startEmbeddedServer({ maxConnections: 40 });
  });
  afterAll(async () => {
    await server.destroy();
  });

  it('aborts the held locks, keeps the waiters waiting, and re-takes nothing by itself', async () => {
    // Session locks need no schema objects, so this server is not migrated.
    const errors: unknown[] = [];
    const fence: PgFence = createPgFence({
      connectionString: server.url,
      applicationName: 'crash_fence',
      advisorySessions: 1,
      onError: (e) => errors.push(e),
    });
    const other: PgFence = createPgFence({
      connectionString: server.url,
      applicationName: 'crash_other',
    });
    try {
      const held = await fence.lock('crash:held');
      const elsewhere = await other.lock('crash:wanted');
      const waiting = fence.lock('crash:wanted', { waitMs: 30_000 });
      waiting.catch(() => {}); // awaited below; a failure must not surface as unhandled first
      const lost = new Promise<unknown>((resolve) =>
        held.signal.addEventListener('abort', () => resolve(held.signal.reason), { once: true }),
      );

      await server.crash();
      const reason = await lost;
      expect(reason).toBeInstanceOf(LockLostError);
      expect(elsewhere.signal.aborted).toBe(true); // the other instance lost its lock too
      expect(errors.length).toBeGreaterThanOrEqual(1);
      await server.restart();

      // The waiter carried on through the restart and got the key on a new session.
      const got = await waiting;
      expect(got.key).toBe('crash:wanted');
      expect(await held.release()).toBe(false);
      expect(await elsewhere.release()).toBe(false);

      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        const { rows } = await admin.query<{ id: string }>(
          `SELECT ((l.classid::int8 << 32) | l.objid::int8)::text AS id
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'crash_fence'`,
        );
        // Only what was asked for after the crash: the lost lock was not quietly re-taken.
        expect(rows.map((r) => r.id)).toEqual([
          advisoryKeyId('pgfence', 'crash:wanted').toString(),
        ]);
      } finally {
        await admin.end();
      }
      expect(await got.release()).toBe(true);
      const again = await other.tryLock('crash:held');
      expect(again).not.toBeNull();
      await again!.release();
    } finally {
      await fence.close();
      await other.close();
    }
  });
});
