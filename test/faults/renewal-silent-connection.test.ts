// A renewal whose pooled connection goes silent (a failover whose old sockets never reset, a
// network fault) while new connections work: the lease survives. The renewal attempt is
// bounded, and the retry runs on a fresh connection.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type PgFence } from '../../src/index.js';
import { testUrl, useMigratedFence } from '../support/database.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { sleep } from '../support/wait.js';

describe('renewal over pooled connections that went silent', () => {
  const t = useMigratedFence();
  let proxy: TcpProxy;

  beforeAll(async () => {
    const target = new URL(testUrl());
    proxy = await startTcpProxy(target.hostname || '127.0.0.1', Number(target.port || 5432));
  });
  afterAll(async () => {
    await proxy.close();
  });

  async function holdThroughSilence(fence: PgFence, prefix: string): Promise<void> {
    const leases = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        fence.lease(`${prefix}-${i}`, { ttlMs: 3_000, autoRenew: true }),
      ),
    );
    // Several pooled connections exist and sit idle between renewals; now they go silent.
    await sleep(500);
    proxy.silenceExisting();
    await sleep(9_000); // three TTLs: one renewal stuck on a dead connection would lose them
    for (const lease of leases) expect(lease.signal.aborted, lease.key).toBe(false);
    const { rows } = await t.pool.query<{ live: number }>(
      `SELECT count(*)::int AS live FROM "${t.schema}".leases
       WHERE key LIKE $1 AND expires_at > clock_timestamp() + interval '1 second'`,
      [`${prefix}-%`],
    );
    expect(rows[0]!.live).toBe(30);
    for (const lease of leases) await lease.release();
  }

  it("keeps every lease on pgfence's own pool", async () => {
    const fence = createPgFence({
      connectionString: proxy.urlFor(testUrl()),
      schema: t.schema,
      connectTimeoutMs: 1_000,
      onError: () => {},
    });
    try {
      await holdThroughSilence(fence, 'own');
    } finally {
      await fence.close();
    }
  }, 30_000);

  it("keeps every lease on the caller's pool (pgfence cannot evict its clients)", async () => {
    const pool = new pg.Pool({ connectionString: proxy.urlFor(testUrl()), max: 6 });
    pool.on('error', () => {});
    const fence = createPgFence({
      pool,
      schema: t.schema,
      connectTimeoutMs: 1_000,
      onError: () => {},
    });
    try {
      await holdThroughSilence(fence, 'theirs');
    } finally {
      await fence.close();
      proxy.cut();
      await pool.end().catch(() => {});
    }
  }, 30_000);
});
