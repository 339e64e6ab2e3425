// A real PgBouncer in session mode: a client keeps its server connection until it leaves, so
// session locks work through it. Leases live in rows, not sessions: they must survive the
// pooler dropping every connection (`KILL` on the admin console, then `RESUME` 1.5 s later)
// and a restart of the pooler.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type Lease, type PgFence } from '../../../src/index.js';
import { analyseChecker } from '../../support/mutex-checker.js';
import { poolerAvailable, startPooler, type PoolerSetup } from '../../support/pooler.js';
import { advisoryLocksLeft, runWorkers, total } from '../../support/pooler-workers.js';
import { sleep } from '../../support/wait.js';

const TTL_MS = 5_000;

describe.skipIf(!poolerAvailable())('behind PgBouncer in session mode', () => {
  let setup: PoolerSetup;
  beforeAll(async () => {
    // A server connection per client connection: room for every process's sessions and pool.
    setup = await startPooler('session', 60);
  });
  afterAll(async () => {
    await setup?.cleanup();
  });

  it('session locks work: exclusive, never refused, none left behind', async () => {
    const reports = await runWorkers(setup, {
      kind: 'session',
      processes: 3,
      callers: 3,
      keys: ['s:a', 's:b'],
      durationMs: 3_000,
    });
    const figures = await analyseChecker(setup.direct, setup.checker);
    const left = await advisoryLocksLeft(setup);
    console.log(
      `[pooler session session-locks] grants=${total(reports, 'grants')} ` +
        `refused=${total(reports, 'refused')} overlaps=${figures.overlaps} locksLeft=${left}`,
    );
    expect(reports.flatMap((r) => r.errors)).toEqual([]);
    expect(figures.overlaps).toBe(0);
    expect(total(reports, 'grants')).toBeGreaterThan(50);
    expect(total(reports, 'refused')).toBe(0);
    expect(total(reports, 'lost')).toBe(0);
    expect(left).toBe(0);
  });

  describe('leases', () => {
    let fence: PgFence;
    let judge: PgFence;
    const errors: unknown[] = [];
    beforeAll(() => {
      fence = createPgFence({
        connectionString: setup.url,
        schema: setup.schema,
        connectTimeoutMs: 1_000,
        onError: (e) => errors.push(e),
      });
      // Asks the server directly whether each lease is still current.
      judge = createPgFence({ connectionString: setup.direct, schema: setup.schema });
    });
    afterAll(async () => {
      await fence?.close();
      await judge?.close();
    });

    const take = async (prefix: string): Promise<Lease[]> =>
      Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          fence.lease(`${prefix}:${i}`, { ttlMs: TTL_MS, autoRenew: true }),
        ),
      );
    const expectKept = async (leases: Lease[]) => {
      for (const lease of leases) {
        expect(lease.signal.aborted, String(lease.signal.reason)).toBe(false);
        expect(await judge.isCurrent(lease.key, lease.token)).toBe(true);
      }
    };

    it('survive KILL and RESUME on the admin console 1.5 s later', async () => {
      const leases = await take('kill');
      const before = leases.map((l) => l.expiresAt.getTime());
      await setup.bouncer.admin(`KILL ${setup.database}`);
      await sleep(1_500);
      await setup.bouncer.admin(`RESUME ${setup.database}`);
      // Past a whole TTL after the KILL: only renewals made through the pooler since then
      // can have kept them.
      await sleep(TTL_MS);
      await expectKept(leases);
      leases.forEach((l, i) => expect(l.expiresAt.getTime()).toBeGreaterThan(before[i]!));
      for (const lease of leases) expect(await lease.release()).toBe(true);
    });

    it('survive a restart of PgBouncer', async () => {
      const leases = await take('restart');
      const before = leases.map((l) => l.expiresAt.getTime());
      await setup.bouncer.restart();
      await sleep(TTL_MS);
      await expectKept(leases);
      leases.forEach((l, i) => expect(l.expiresAt.getTime()).toBeGreaterThan(before[i]!));
      for (const lease of leases) expect(await lease.release()).toBe(true);
    });
  });
});
