import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { processScript, startScript } from '../support/spawn.js';
import { sleep } from '../support/wait.js';

const JOBS = 1_500;
const TTL_MS = 1_500;

describe('claim({ waitMs }) + xactRelease from three processes, one of them killed', () => {
  let t: TestFence;
  beforeAll(async () => {
    t = await migratedFence();
    await t.pool.query(
      `CREATE TABLE "${t.schema}".jobs (id int PRIMARY KEY, done int NOT NULL DEFAULT 0, done_by text)`,
    );
    await t.pool.query(`INSERT INTO "${t.schema}".jobs (id) SELECT generate_series(1, ${JOBS})`);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('completes every job exactly once; a completion whose lease expired changes nothing', async () => {
    const count = async (where: string, values: unknown[] = []) =>
      (
        await t.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${t.schema}".${where}`,
          values,
        )
      ).rows[0]!.n;

    // w0 works slowly so that it always holds unfinished leases when it is killed; w1 now and
    // then stalls a batch past its TTL, so that completion must release and change nothing.
    const owners = ['w0', 'w1', 'w2'];
    const workers = owners.map((owner) =>
      startScript(processScript('xact-claim-worker.ts'), [
        testUrl(),
        t.schema,
        owner,
        '4',
        '10',
        String(TTL_MS),
        owner === 'w0' ? '400' : '20',
        owner === 'w1' ? '9' : '0',
      ]),
    );
    try {
      const started = performance.now();
      for (;;) {
        const done = await count('jobs WHERE done > 0');
        const held = await count(`leases WHERE owner = 'w0' AND expires_at > clock_timestamp()`);
        if (done >= JOBS / 5 && held > 0) break;
        if (performance.now() - started > 40_000) throw new Error('the workers made no progress');
        await sleep(20);
      }
      workers[0]!.kill('SIGKILL');
      const killed = await workers[0]!.finished;
      expect(killed.signal).toBe('SIGKILL');
      const orphaned = (
        await t.pool.query<{ key: string }>(
          `SELECT key FROM "${t.schema}".leases WHERE owner = 'w0' AND expires_at > clock_timestamp()`,
        )
      ).rows.map((r) => Number(r.key.slice('job:'.length)));
      expect(orphaned.length).toBeGreaterThan(0);

      const [w1, w2] = await Promise.all([workers[1]!.finished, workers[2]!.finished]);
      for (const run of [w1!, w2!]) {
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
      }

      // Every job done exactly once.
      expect(await count('jobs WHERE done <> 1')).toBe(0);
      expect(await count('jobs WHERE done = 1')).toBe(JOBS);
      expect(await count('leases')).toBe(0);

      // Each survivor marked exactly the jobs it says it completed.
      const summaries = [w1!, w2!].map((run) => JSON.parse(run.stdout.trim().split('\n').at(-1)!));
      for (const [i, summary] of summaries.entries()) {
        expect(await count('jobs WHERE done_by = $1', [owners[i + 1]])).toBe(summary.completed);
      }
      const byKilled = await count(`jobs WHERE done_by = 'w0'`);
      expect(summaries[0].completed + summaries[1].completed + byKilled).toBe(JOBS);

      // w1's stalled completions released nothing and changed nothing (the jobs were done
      // exactly once all the same, above).
      expect(summaries[0].refused).toBeGreaterThan(0);

      // The killed worker's unfinished jobs came back after its leases expired.
      const rescued = await count(`jobs WHERE id = ANY($1::int[]) AND done_by <> 'w0'`, [orphaned]);
      expect(rescued).toBe(orphaned.length);
    } finally {
      for (const worker of workers) worker.kill('SIGKILL');
    }
  });
});
