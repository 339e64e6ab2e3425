// The lock-delay across real restarts of a server of our own: after a crash of the whole
// server (its postmaster SIGKILLed, then started again) and after a crash of one server process
// (the postmaster throws shared memory away and recovers, keeping its start time), no advisory
// lock is granted before lockDelayMs have passed, and then it is.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, LockLostError, type PgFence } from '../../src/index.js';
import { startEmbeddedServer, type OwnServer } from '../support/embedded-server.js';
import { sleep } from '../support/wait.js';

const DELAY_MS = 2_000;

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

async function startTime(url: string): Promise<string> {
  const rows = await query<{ started: string }>(
    url,
    'SELECT pg_postmaster_start_time()::text AS started',
  );
  return rows[0]!.started;
}

/** Waits until the server accepts connections and answers; when it did. */
async function answering(url: string): Promise<number> {
  const until = performance.now() + 30_000;
  for (;;) {
    try {
      await query(url, 'SELECT 1');
      return performance.now();
    } catch (error) {
      if (performance.now() > until) throw error;
      await sleep(50);
    }
  }
}

function lost(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

describe('the lock-delay across server crashes', () => {
  let server: OwnServer;
  const fences: PgFence[] = [];
  const fence = (name: string): PgFence => {
    const f = createPgFence({
      connectionString: server.url,
      applicationName: name,
      lockDelayMs: DELAY_MS,
      advisorySessions: 1,
    });
    fences.push(f);
    return f;
  };

  beforeAll(async () => {
    server = await startEmbeddedServer({ maxConnections: 40 });
    const setup = fence('lockdelay_setup');
    await setup.migrate();
    // The schema's first advisory session: a fresh schema on a fresh server has no delay.
    const first = await setup.tryLock('first');
    expect(first).not.toBeNull();
    await first!.release();
  });
  afterAll(async () => {
    await Promise.allSettled(fences.map((f) => f.close()));
    await server.destroy();
  });

  it('grants nothing for lockDelayMs after the server restarts from a crash, then grants', async () => {
    const holder = fence('lockdelay_holder');
    const held = await holder.lock('k');
    await server.crash();
    expect(await lost(held.signal)).toBeInstanceOf(LockLostError);
    await server.restart();
    const up = await answering(server.url);

    const taker = fence('lockdelay_taker');
    expect(await taker.tryLock('k')).toBeNull();
    const lock = await taker.lock('k', { waitMs: 20_000 });
    const after = performance.now() - up;
    expect(after).toBeGreaterThanOrEqual(DELAY_MS);
    expect(after).toBeLessThan(DELAY_MS + 3_000);
    await lock.release();
    const again = await fence('lockdelay_later').tryLock('k');
    expect(again).not.toBeNull();
    await again!.release();
  });

  it('grants nothing for lockDelayMs after one server process crashed (same postmaster), then grants', async () => {
    // Past any delay left from the test before.
    const ready = await fence('lockdelay_ready').lock('ready', { waitMs: 20_000 });
    await ready.release();
    const startedBefore = await startTime(server.url);
    const holder = fence('lockdelay_holder2');
    const held = await holder.lock('j');

    // A backend SIGKILLed: the postmaster ends every other one and reinitialises shared memory.
    const victim = new pg.Client({ connectionString: server.url });
    victim.on('error', () => {});
    await victim.connect();
    const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    process.kill(rows[0]!.pid, 'SIGKILL');
    expect(await lost(held.signal)).toBeInstanceOf(LockLostError);
    await victim.end().catch(() => {});
    const up = await answering(server.url);
    const startedAfter = await startTime(server.url);
    // Neither the start time nor the timeline tells this incarnation from the last one.
    expect(startedAfter).toBe(startedBefore);

    const taker = fence('lockdelay_taker2');
    expect(await taker.tryLock('j')).toBeNull();
    const lock = await taker.lock('j', { waitMs: 20_000 });
    const after = performance.now() - up;
    expect(after).toBeGreaterThanOrEqual(DELAY_MS);
    expect(after).toBeLessThan(DELAY_MS + 3_000);
    await lock.release();
  });
});
