// A transaction-mode pooler hands each statement to whichever server connection is free, so a
// "session" silently changes backend. These tests stand in for one by making the dedicated
// connection report another backend pid from a chosen moment on.
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionLockManager } from '../../src/advisory/session-lock-manager.js';
import { Database } from '../../src/db/database.js';
import { LockLostError, SessionChangedError } from '../../src/errors.js';
import { resolveOptions } from '../../src/options.js';
import { newPool, testUrl, uniqueSchema, useMigratedFence } from '../support/database.js';

class SwitchingDatabase extends Database {
  switched = false;
  readonly clients: pg.Client[] = [];

  override async connectDedicated(applicationName?: string): Promise<pg.Client> {
    const client = await super.connectDedicated(applicationName);
    this.clients.push(client);
    const query = client.query.bind(client) as (config: unknown, values?: unknown) => unknown;
    const switchPid = (text: string): string =>
      text.replaceAll('pg_backend_pid()', '(pg_backend_pid() + 1)');
    (client as unknown as { query: unknown }).query = (config: unknown, values?: unknown) => {
      if (!this.switched) return query(config, values);
      if (typeof config === 'string') return query(switchPid(config), values);
      // A named statement: as a pooler that keeps prepared statements per client would.
      const named = config as { name?: string; text: string };
      return query(
        { ...named, name: named.name && `${named.name}_other`, text: switchPid(named.text) },
        values,
      );
    };
    return client;
  }
}

describe('a session that changes backend (transaction-mode pooler)', () => {
  const t = useMigratedFence();
  const admin = newPool({ max: 1 });
  afterAll(async () => {
    await admin.end();
  });

  function manager(livenessIntervalMs: number): {
    db: SwitchingDatabase;
    locks: SessionLockManager;
    appName: string;
  } {
    const appName = uniqueSchema('pooler');
    const options = resolveOptions({
      connectionString: testUrl(),
      schema: t.schema,
      applicationName: appName,
      advisorySessions: 1,
      livenessIntervalMs,
    });
    const db = new SwitchingDatabase(options);
    return { db, locks: new SessionLockManager(db, options), appName };
  }

  async function advisoryLocksOf(appName: string): Promise<number> {
    const { rows } = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND a.application_name = $1`,
      [appName],
    );
    return rows[0]!.n;
  }

  it('fails the next lock call with SessionChangedError and loses the locks on it', async () => {
    const { db, locks, appName } = manager(60_000);
    try {
      const held = await locks.lock('pooled:a');
      db.switched = true;
      const error = await locks.tryLock('pooled:b').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SessionChangedError);
      expect((error as SessionChangedError).code).toBe('SESSION_CHANGED');
      expect((error as Error).message).toMatch(/pooler/);
      expect(held.signal.aborted).toBe(true);
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      expect((held.signal.reason as LockLostError).cause).toBe(error);
      expect(await held.release()).toBe(false);
      // The connection was dropped, so the server let go of both keys.
      for (let i = 0; i < 50 && (await advisoryLocksOf(appName)) > 0; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await advisoryLocksOf(appName)).toBe(0);
    } finally {
      await locks.close();
      await db.close();
    }
  });

  it('recognises a backend that lacks the session’s prepared statement', async () => {
    const { db, locks } = manager(60_000);
    try {
      const held = await locks.lock('pooled:d');
      // What a pooler handing the next statement to another server connection looks like.
      await db.clients[0]!.query('DEALLOCATE pgfence_advisory_batch');
      const error = await locks.tryLock('pooled:e').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SessionChangedError);
      expect(held.signal.reason).toBeInstanceOf(LockLostError);
      expect(await held.release()).toBe(false);
    } finally {
      await locks.close();
      await db.close();
    }
  });

  it('refuses every session lock once it saw a change, and says what to use instead', async () => {
    const { db, locks } = manager(60_000);
    try {
      await locks.lock('pooled:f');
      db.switched = true;
      const first = await locks.tryLock('pooled:g').catch((e: unknown) => e);
      expect(first).toBeInstanceOf(SessionChangedError);
      // A new session would be a direct one again here (the stand-in switches only the old
      // connection's answers): only the refusal keeps pgfence from trying again.
      db.switched = false;
      const calls = [
        locks.tryLock('pooled:h'),
        locks.lock('pooled:h', { waitMs: 1_000 }),
        locks.withLock('pooled:h', () => 'ran'),
        locks.lockAll(['pooled:h', 'pooled:i'], { waitMs: 1_000 }),
      ];
      for (const call of calls) {
        const error = await call.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(SessionChangedError);
        expect((error as Error).message).toMatch(/refused.*lease.*xactLock/s);
        expect((error as SessionChangedError).cause).toBe(first);
      }
    } finally {
      await locks.close();
      await db.close();
    }
  });

  it('notices the change from the liveness check while nobody calls', async () => {
    const { db, locks } = manager(200);
    try {
      const held = await locks.lock('pooled:c');
      db.switched = true;
      const reason = await new Promise<unknown>((resolve) => {
        held.signal.addEventListener('abort', () => resolve(held.signal.reason), { once: true });
        setTimeout(() => resolve('no abort within 10 s'), 10_000);
      });
      expect(reason).toBeInstanceOf(LockLostError);
      expect((reason as LockLostError).cause).toBeInstanceOf(SessionChangedError);
    } finally {
      await locks.close();
      await db.close();
    }
  });
});
