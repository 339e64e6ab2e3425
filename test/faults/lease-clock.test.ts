// A process whose wall clock is minutes off gets exactly the behaviour of one with a correct
// clock: expiry is the database's business, deadlines run on the monotonic clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { processScript, startScript } from '../support/spawn.js';

describe('a client whose wall clock is wrong', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  for (const offsetMs of [-7 * 60_000, 0, 9 * 60_000]) {
    it(`behaves the same with its clock ${offsetMs / 60_000} minutes off`, async () => {
      const tag = `o${offsetMs}`;
      const keys = { renewKey: `${tag}-renew`, expireKey: `${tag}-expire`, waitKey: `${tag}-wait` };
      const child = startScript(
        processScript('lease-clock-worker.ts'),
        [JSON.stringify({ url: testUrl(), schema: t.schema, ...keys })],
        { PGFENCE_FAKE_CLOCK_OFFSET_MS: String(offsetMs) },
      );
      // Once the worker is about to wait, take its key for 2 s (no renewal, no release).
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('"ready"')) resolve();
        });
        // finished only ever resolves (with the exit code and output).
        void child.finished.then((f) => reject(new Error(`worker ended early: ${f.stderr}`)));
      });
      const held = await t.fence.lease(keys.waitKey, { ttlMs: 2_000, waitMs: 30_000 });
      const finished = await child.finished;
      expect(finished.stderr).toBe('');
      expect(finished.code).toBe(0);
      const report = JSON.parse(finished.stdout.trim().split('\n').pop()!) as Record<
        string,
        number | boolean
      >;
      // The fake clock was in force…
      expect(Math.abs((report.dateNow as number) - Date.now() - offsetMs)).toBeLessThan(60_000);
      // …and changed nothing:
      expect(report.renewedAborted).toBe(false);
      expect(report.renewedCurrent).toBe(true);
      expect(report.renewedReleased).toBe(true);
      expect(report.lostAfterMs).toBeGreaterThanOrEqual(850);
      expect(report.lostAfterMs).toBeLessThan(3_000);
      // expiresAt is the database's time, whatever the local clock says.
      expect(Math.abs(report.expiresInMs as number)).toBeLessThan(5_000);
      expect(report.waitedMs).toBeGreaterThanOrEqual(500);
      expect(report.waitedMs).toBeLessThan(10_000);
      expect(await held.release()).toBe(false);
    });
  }
});
