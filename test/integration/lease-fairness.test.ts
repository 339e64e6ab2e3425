// Fair hand-off across processes: 8 processes, one caller each, on one key. The waiter queue in
// the database hands the key round, so a process that releases and asks again at once does not
// take it back ahead of the others.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testUrl, useMigratedFence } from '../support/database.js';
import { analyseChecker, createChecker, dropChecker } from '../support/mutex-checker.js';
import { processScript, startScript } from '../support/spawn.js';

interface WorkerResult {
  acquisitions: number;
  errors: string[];
  waitP50: number;
  waitP99: number;
}

describe('fair hand-off', () => {
  const t = useMigratedFence();
  let checker: string;

  beforeAll(async () => {
    checker = await createChecker(testUrl());
  });
  afterAll(async () => {
    await dropChecker(testUrl(), checker);
  });

  it('8 processes on one key: each gets at least 0.8 of a fair share of the grants', async () => {
    const key = `fair-${randomBytes(4).toString('hex')}`;
    const processes = 8;
    const workers = Array.from({ length: processes }, (_, i) =>
      startScript(processScript('kinds-worker.ts'), [
        JSON.stringify({
          scenario: 'fair',
          url: testUrl(),
          schema: t.schema,
          checker,
          name: `p${i + 1}`,
          keys: [key],
          callers: 1,
          durationMs: 8_000,
          holdMs: 4,
        }),
      ]),
    );
    const runs = await Promise.all(workers.map((w) => w.finished));
    const results = runs.map((run) => {
      expect(run.stderr, run.stderr).toBe('');
      expect(run.code).toBe(0);
      const result = JSON.parse(run.stdout.trim()) as WorkerResult;
      expect(result.errors).toEqual([]);
      return result;
    });
    const figures = await analyseChecker(testUrl(), checker);
    const shares = figures.perKeyAndProcess[key] ?? {};
    const total = Object.values(shares).reduce((n, x) => n + x, 0);
    const fair = total / processes;
    const p99 = Math.max(...results.map((r) => r.waitP99));
    console.log(
      `[fairness] grants=${total} perProcess=${JSON.stringify(shares)} ` +
        `minShare=${(Math.min(...Object.values(shares)) / fair).toFixed(2)} worstP99=${p99.toFixed(0)}ms`,
    );
    expect(figures.overlaps).toBe(0);
    expect(total).toBeGreaterThan(80);
    for (let i = 1; i <= processes; i += 1) {
      expect(shares[`p${i}`] ?? 0, `p${i}`).toBeGreaterThanOrEqual(0.8 * fair);
    }
  });
});
