// A real PgBouncer in transaction mode with a small pool (2 server connections), so the
// processes' statements share backends: session locks must never be granted twice without a
// word (each grant exclusive per the checker, or refused with SessionChangedError), no
// advisory lock may stay behind on a pooled backend once every client has exited, reaper passes
// never overlap, and leases and xactLock stay exclusive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyseChecker } from '../../support/mutex-checker.js';
import { poolerAvailable, startPooler, type PoolerSetup } from '../../support/pooler.js';
import {
  advisoryLocksLeft,
  runWorkers,
  total,
  unexpectedErrors,
} from '../../support/pooler-workers.js';

describe.skipIf(!poolerAvailable())('behind PgBouncer in transaction mode', () => {
  let setup: PoolerSetup;
  beforeAll(async () => {
    setup = await startPooler('transaction', 2);
  });
  afterAll(async () => {
    await setup?.cleanup();
  });

  it('session locks: every grant exclusive or refused with SessionChangedError, none left behind', async () => {
    const reports = await runWorkers(setup, {
      kind: 'session',
      processes: 3,
      callers: 3,
      keys: ['s:a', 's:b'],
      durationMs: 4_000,
    });
    const figures = await analyseChecker(setup.direct, setup.checker);
    const left = await advisoryLocksLeft(setup);
    console.log(
      `[pooler transaction session-locks] grants=${total(reports, 'grants')} ` +
        `refused=${total(reports, 'refused')} lost=${total(reports, 'lost')} ` +
        `timeouts=${total(reports, 'timeouts')} overlaps=${figures.overlaps} locksLeft=${left} ` +
        `backends not reached again=${reports.flatMap((r) => r.errors).filter((e) => /could not be given back/.test(e)).length}`,
    );
    expect(unexpectedErrors(reports)).toEqual([]);
    expect(figures.overlaps).toBe(0);
    // Backends shared between 3 processes: the sharing is noticed and refused. Not necessarily
    // by every process: one that refuses stops sending session statements, so the last process
    // can be left alone on the pool's backends, where its session keeps one backend (every
    // statement checks it) and it is rightly never refused; the checker shows its grants
    // exclusive. Whether any grant happens here depends on how the pooler hands out its two
    // backends under load (a loaded run can refuse all of them), so grants are asked of the
    // phase below.
    expect(total(reports, 'refused')).toBeGreaterThan(0);
    expect(total(reports, 'timeouts')).toBe(0);
    expect(left).toBe(0);

    // One process alone on the pool: its session reaches the same backend again, so session
    // locks are granted through the pooler, and still exclusive. The pool's backends are new
    // ones (KILL closes them): a transaction-mode pooler resets nothing between clients, so the
    // backends of the run above still carry their sessions' claims and would refuse it.
    await setup.bouncer.admin(`KILL ${setup.database}`);
    await setup.bouncer.admin(`RESUME ${setup.database}`);
    const solo = await runWorkers(setup, {
      kind: 'session',
      processes: 1,
      callers: 1,
      keys: ['s:solo'],
      durationMs: 1_500,
    });
    const soloFigures = await analyseChecker(setup.direct, setup.checker);
    console.log(
      `[pooler transaction session-locks, one process] grants=${total(solo, 'grants')} ` +
        `refused=${total(solo, 'refused')} overlaps=${soloFigures.overlaps}`,
    );
    expect(unexpectedErrors(solo)).toEqual([]);
    expect(soloFigures.overlaps).toBe(0);
    expect(total(solo, 'grants')).toBeGreaterThan(0);
    expect(await advisoryLocksLeft(setup)).toBe(0);
  });

  it('the reaper runs one pass at a time across processes, and leaves no lock behind', async () => {
    // Expired rows keep coming, so that pass after pass has work (a pass ends at a short batch).
    let feeding = true;
    const feeder = (async () => {
      for (let round = 0; feeding; round += 1) {
        await setup.directQuery(
          `INSERT INTO "${setup.schema}".leases (key, owner, token, acquired_at, expires_at)
           SELECT 'x' || $1::int || ':' || g, 'someone', "${setup.schema}".next_token(),
                  clock_timestamp(), clock_timestamp() - interval '1 second'
           FROM generate_series(1, 60) g`,
          [round],
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const reports = await runWorkers(setup, {
      kind: 'reaper',
      processes: 3,
      durationMs: 4_000,
    }).finally(() => (feeding = false));
    await feeder;
    const working = reports.flatMap((r) =>
      r.passes.filter((p) => p.deleted > 0).map((p) => ({ ...p, who: r.name })),
    );
    let overlaps = 0;
    for (const p of working) {
      for (const q of working) {
        // 2 ms for timer granularity and the processes' clocks.
        if (p.who < q.who && !(p.end <= q.start + 2 || q.end <= p.start + 2)) overlaps += 1;
      }
    }
    const left = await advisoryLocksLeft(setup);
    console.log(
      `[pooler transaction reaper] passes with work=${working.length} ` +
        `by process=${reports.map((r) => r.passes.filter((p) => p.deleted > 0).length).join('/')} ` +
        `overlaps=${overlaps} locksLeft=${left}`,
    );
    expect(unexpectedErrors(reports)).toEqual([]);
    expect(new Set(working.map((p) => p.who)).size).toBeGreaterThan(1);
    expect(overlaps).toBe(0);
    expect(left).toBe(0);
  });

  it('leases and xactLock stay exclusive through the pooler', async () => {
    const [leases, xacts] = await Promise.all([
      runWorkers(setup, {
        kind: 'lease',
        processes: 2,
        callers: 3,
        keys: ['l:a', 'l:b'],
        durationMs: 3_000,
      }),
      runWorkers(setup, {
        kind: 'xact',
        processes: 2,
        callers: 3,
        keys: ['x:a', 'x:b'],
        durationMs: 3_000,
      }),
    ]);
    const figures = await analyseChecker(setup.direct, setup.checker);
    const byKey = (prefix: string) =>
      Object.entries(figures.perKeyAndProcess)
        .filter(([key]) => key.startsWith(prefix))
        .reduce((n, [, per]) => n + Object.values(per).reduce((a, b) => a + b, 0), 0);
    console.log(
      `[pooler transaction leases/xactLock] lease grants=${total(leases, 'grants')} ` +
        `xact grants=${total(xacts, 'grants')} overlaps=${figures.overlaps} ` +
        `regressions=${figures.regressions}`,
    );
    expect(unexpectedErrors([...leases, ...xacts])).toEqual([]);
    expect(byKey('l:')).toBeGreaterThan(0);
    expect(byKey('x:')).toBeGreaterThan(0);
    // The checker's log holds the session-lock test's entries too: none of them overlapped.
    expect(figures.overlaps).toBe(0);
    expect(figures.regressions).toBe(0);
    expect(figures.duplicateTokens).toBe(0);
    expect(await setup.advisoryLocks()).toBe(0);
  });
});
