// Losing an advisory session: a terminated backend, and a backend that stops answering.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AlreadyReleasedError,
  LockLostError,
  type AdvisoryLock,
  type PgFence,
} from '../../src/index.js';
import { advisoryKeyId } from '../../src/keys.js';
import { newPool, testUrl, uniqueSchema, useMigratedFence } from '../support/database.js';
import { processScript, runScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

/** Advisory lock ids granted to connections with this application_name, by backend pid. */
async function locksByPid(pool: pg.Pool, appName: string): Promise<Map<number, string[]>> {
  const { rows } = await pool.query<{ pid: number; id: string }>(
    `SELECT l.pid, ((l.classid::int8 << 32) | l.objid::int8)::text AS id
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`,
    [appName],
  );
  const byPid = new Map<number, string[]>();
  for (const row of rows) byPid.set(row.pid, [...(byPid.get(row.pid) ?? []), row.id]);
  return byPid;
}

async function pidsOf(pool: pg.Pool, appName: string): Promise<number[]> {
  const { rows } = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`,
    [appName],
  );
  return rows.map((r) => r.pid);
}

/** When each lock's signal aborted (performance.now()). */
function abortTimes(locks: AdvisoryLock[]): Promise<number>[] {
  return locks.map(
    (lock) =>
      new Promise<number>((resolve) =>
        lock.signal.addEventListener('abort', () => resolve(performance.now()), { once: true }),
      ),
  );
}

async function takeInAnotherProcess(schema: string, keys: string[]): Promise<string[]> {
  const run = await runScript(processScript('advisory-taker.ts'), [
    JSON.stringify({ url: testUrl(), schema, keys, waitMs: 15_000 }),
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const result = JSON.parse(run.stdout.trim()) as { got: string[]; failed: string[] };
  expect(result.failed).toEqual([]);
  return result.got;
}

describe('losing an advisory session', () => {
  const t = useMigratedFence();
  const admin = newPool({ max: 2 });
  afterAll(async () => {
    await admin.end();
  });

  it('aborts every lock on a terminated backend at once, and never re-takes them', async () => {
    const appName = uniqueSchema('term');
    const errors: unknown[] = [];
    const fence: PgFence = t.another({ applicationName: appName, onError: (e) => errors.push(e) });
    const keys = Array.from({ length: 20 }, (_, i) => `term:${i}`);
    const locks = await Promise.all(keys.map((k) => fence.lock(k)));
    const byPid = await locksByPid(admin, appName);
    expect([...byPid.values()].flat()).toHaveLength(20);
    expect(byPid.size).toBe(2); // spread over both sessions

    // Kill one session: exactly the locks on it are lost.
    const [victim, survivor] = [...byPid.keys()];
    const onVictim = new Set(byPid.get(victim!)!);
    const lostLocks = locks.filter((l) => onVictim.has(advisoryKeyId(t.schema, l.key).toString()));
    expect(lostLocks.length).toBe(onVictim.size);
    const aborted = abortTimes(lostLocks);
    const killedAt = performance.now();
    await admin.query('SELECT pg_terminate_backend($1)', [victim]);
    const times = await Promise.all(aborted);
    expect(Math.max(...times) - killedAt).toBeLessThan(5_000);
    for (const lock of locks) {
      if (lostLocks.includes(lock)) {
        expect(lock.signal.reason).toBeInstanceOf(LockLostError);
        expect((lock.signal.reason as LockLostError).code).toBe('LOCK_LOST');
      } else {
        expect(lock.signal.aborted).toBe(false);
      }
    }
    expect(errors.length).toBe(1);

    // The survivor still holds its locks; the lost keys are free for another process.
    expect((await locksByPid(admin, appName)).get(survivor!)?.length).toBe(20 - onVictim.size);
    const lostKeys = lostLocks.map((l) => String(l.key)).sort();
    expect(await takeInAnotherProcess(t.schema, lostKeys)).toEqual(lostKeys);

    // Nothing was quietly taken again on a new connection.
    expect((await locksByPid(admin, appName)).get(survivor!)?.length).toBe(20 - onVictim.size);
    expect(await pidsOf(admin, appName)).toEqual([survivor]);

    for (const lock of lostLocks) {
      expect(await lock.release()).toBe(false);
      await expect(lock.release()).rejects.toBeInstanceOf(AlreadyReleasedError);
    }
    // The remaining locks release normally, and the fence works again on a fresh session.
    for (const lock of locks.filter((l) => !lostLocks.includes(l))) {
      expect(await lock.release()).toBe(true);
    }
    const again = await fence.lock(lostKeys[0]!);
    expect((await pidsOf(admin, appName)).length).toBe(2);
    expect(await pidsOf(admin, appName)).not.toContain(victim);
    await again.release();
    await fence.close();
  });

  it('treats a backend that stops answering as lost, within the liveness interval', async () => {
    const appName = uniqueSchema('stall');
    const fence = t.another({
      applicationName: appName,
      advisorySessions: 1,
      livenessIntervalMs: 400,
    });
    const lock = await fence.lock('stall:1');
    const [pid] = await pidsOf(admin, appName);
    expect(pid).toBeDefined();
    const aborted = abortTimes([lock])[0]!;
    const stoppedAt = performance.now();
    // A stopped backend keeps its socket open and never answers: a stalled connection.
    process.kill(pid!, 'SIGSTOP');
    let pending: Promise<unknown> | undefined;
    try {
      pending = fence.tryLock('stall:2').catch((e: unknown) => e);
      const abortedAt = await aborted;
      // Two intervals at most (the probe is sent, then waited for), plus slack for a busy machine.
      expect(abortedAt - stoppedAt).toBeLessThan(5_000);
      expect(lock.signal.reason).toBeInstanceOf(LockLostError);
      expect(String((lock.signal.reason as LockLostError).message)).toMatch(/did not answer/);
      // The try queued behind the stalled connection fails too instead of hanging.
      expect(await pending).toBeInstanceOf(Error);
    } finally {
      process.kill(pid!, 'SIGCONT');
    }
    expect(await lock.release()).toBe(false);
    // The backend sees its client gone once it runs again, and the key becomes free.
    expect(await takeInAnotherProcess(t.schema, ['stall:1'])).toEqual(['stall:1']);
    await sleep(10);
    await fence.close();
  });
});
