// Server settings users really have, set on the role pgfence logs in as: idle_session_timeout
// and idle_in_transaction_session_timeout end pooled connections, and a small statement_timeout
// cancels statements. pgfence's own sessions set what they need for themselves; waiters and
// renewals retry what such timeouts end; xactLock keeps its wait within waitMs.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, LockTimeoutError, type PgFence } from '../../src/index.js';
import { useMigratedFence } from '../support/database.js';
import { createRole, type TestRole } from '../support/role.js';
import { sleep } from '../support/wait.js';

describe('a role with idle_session_timeout, idle_in_transaction_session_timeout and statement_timeout', () => {
  const t = useMigratedFence();
  let role: TestRole;
  let fence: PgFence;
  const errors: unknown[] = [];

  beforeAll(async () => {
    role = await createRole(t.schema, {
      idle_session_timeout: '1s',
      idle_in_transaction_session_timeout: '1s',
      statement_timeout: '200ms',
    });
    fence = createPgFence({
      connectionString: role.url,
      schema: t.schema,
      onError: (e) => errors.push(e),
    });
  });
  afterAll(async () => {
    await fence.close();
    await role.drop();
  });

  it('the role really has them', async () => {
    const client = new pg.Client({ connectionString: role.url });
    await client.connect();
    const { rows } = await client.query<{ s: string; i: string; st: string }>(
      `SELECT current_setting('idle_session_timeout') AS s,
              current_setting('idle_in_transaction_session_timeout') AS i,
              current_setting('statement_timeout') AS st`,
    );
    await client.end();
    expect(rows[0]).toEqual({ s: '1s', i: '1s', st: '200ms' });
  });

  it('lease waiters outlive pooled connections that the server ends while they wait', async () => {
    for (let i = 0; i < 5; i += 1) {
      const key = `handoff-${i}`;
      const held = await t.fence.lease(key, { ttlMs: 30_000 });
      // Longer than idle_session_timeout: the waiter's pooled connections are ended meanwhile.
      const waiting = fence.lease(key, { waitMs: 15_000, ttlMs: 5_000 });
      await sleep(1_600);
      await held.release();
      const mine = await waiting;
      expect(mine.key).toBe(key);
      await mine.release();
    }
  }, 60_000);

  it('auto-renewed leases survive pooled connections ended between renewals', async () => {
    const leases = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        fence.lease(`renew-${i}`, { ttlMs: 3_000, autoRenew: true }),
      ),
    );
    await sleep(8_000);
    for (const lease of leases) expect(lease.signal.aborted, lease.key).toBe(false);
    for (const lease of leases) expect(await lease.release()).toBe(true);
  }, 30_000);

  it('an idle advisory session is not ended by idle_session_timeout', async () => {
    const lock = await fence.lock('idle-session');
    await sleep(3_000); // three times the role's idle_session_timeout
    expect(lock.signal.aborted).toBe(false);
    // Still held on the server: nobody else can take it.
    expect(await t.fence.tryLock('idle-session')).toBeNull();
    await lock.release();
  }, 20_000);

  it('xactLock waits its waitMs under a 200 ms statement_timeout, and a timeout leaves the transaction usable', async () => {
    const holder = await t.pool.connect();
    const client = new pg.Client({ connectionString: role.url });
    client.on('error', () => {});
    await client.connect();
    try {
      await holder.query('BEGIN');
      await t.fence.xactLock(holder, 'xact-wait');
      await client.query('BEGIN');
      const started = performance.now();
      const waiting = fence.xactLock(client, 'xact-wait', { waitMs: 3_000 });
      await sleep(800); // four times the statement_timeout
      await holder.query('COMMIT');
      await waiting;
      expect(performance.now() - started).toBeGreaterThanOrEqual(750);
      // The role's statement_timeout is back for the rest of the caller's transaction.
      const { rows } = await client.query<{ st: string }>(
        `SELECT current_setting('statement_timeout') AS st`,
      );
      expect(rows[0]!.st).toBe('200ms');
      await client.query('COMMIT');

      await holder.query('BEGIN');
      await t.fence.xactLock(holder, 'xact-wait');
      await client.query('BEGIN');
      const error = await fence
        .xactLock(client, 'xact-wait', { waitMs: 600 })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockTimeoutError);
      const after = await client.query<{ one: number }>('SELECT 1 AS one');
      expect(after.rows[0]!.one).toBe(1);
      await client.query('COMMIT');
      await holder.query('COMMIT');
    } finally {
      holder.release();
      await client.end().catch(() => {});
    }
  }, 30_000);
});
