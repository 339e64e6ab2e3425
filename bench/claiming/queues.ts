// The two job queues scenario 3 compares pgfence with, each set up as its documentation
// recommends (one instance per process, default settings except what the comparison names),
// and each drained with WORKERS concurrent jobs in batches of BATCH.
import { performance } from 'node:perf_hooks';
import { Logger, makeWorkerUtils, run, type Runner } from 'graphile-worker';
import PgBoss from 'pg-boss';
import type pg from 'pg';
import { BATCH, Tally, WORKERS, type Contender } from './contenders.js';

const QUEUE = 'bench';
const LOAD_CHUNK = 1_000;

/** pg-boss: `fetch({ batchSize: 10 })` + `complete(ids)`, WORKERS loops on one PgBoss. */
export async function pgBossContender(
  url: string,
  admin: pg.Pool,
  schema: string,
): Promise<Contender> {
  const boss = new PgBoss({ connectionString: url, schema, application_name: 'pgfence-bench' });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue(QUEUE);
  const tally = new Tally();
  return {
    id: 'pg-boss',
    label: 'pg-boss 10 fetch({ batchSize: 10 }) + complete(ids)',
    load: async (n) => {
      tally.reset();
      for (let first = 1; first <= n; first += LOAD_CHUNK) {
        const jobs = [];
        for (let id = first; id < Math.min(n + 1, first + LOAD_CHUNK); id += 1) {
          jobs.push({ name: QUEUE, data: { id } });
        }
        await boss.insert(jobs);
      }
      await admin.query(`ANALYZE "${schema}".job`);
    },
    drain: async (n) => {
      const start = performance.now();
      let last = start;
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (tally.size < n) {
            const jobs = await boss.fetch<{ id: number }>(QUEUE, { batchSize: BATCH });
            if (jobs.length === 0) continue;
            await boss.complete(
              QUEUE,
              jobs.map((job) => job.id),
            );
            for (const job of jobs) tally.add(job.data.id);
            last = performance.now();
          }
        }),
      );
      return last - start;
    },
    verify: async (n) => tally.verify(n, 'pg-boss'),
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

/**
 * graphile-worker with its batching: a local queue of 10 jobs per fetch and completions
 * batched with no delay, WORKERS concurrent jobs in one runner.
 */
export async function graphileContender(
  url: string,
  admin: pg.Pool,
  schema: string,
): Promise<Contender> {
  const tally = new Tally();
  const logger = new Logger(() => () => {});
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger });
  await utils.migrate();
  const preset = {
    worker: {
      connectionString: url,
      schema,
      concurrentJobs: WORKERS,
      localQueue: { size: BATCH },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      logger,
    },
  };
  let runner: Runner | undefined;
  const jobsLeft = async () =>
    Number(
      (await admin.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}"._private_jobs`))
        .rows[0]?.n ?? 0,
    );
  return {
    id: 'graphile-worker',
    label: 'graphile-worker 0.17 localQueue.size 10, completeJobBatchDelay 0',
    load: async (n) => {
      tally.reset();
      for (let first = 1; first <= n; first += LOAD_CHUNK) {
        const specs = [];
        for (let id = first; id < Math.min(n + 1, first + LOAD_CHUNK); id += 1) {
          specs.push({ identifier: 'job', payload: { id } });
        }
        await utils.addJobs(specs);
      }
      await admin.query(`ANALYZE "${schema}"._private_jobs`);
    },
    drain: async (n) => {
      const start = performance.now();
      let handled!: () => void;
      const allHandled = new Promise<void>((resolve) => (handled = resolve));
      runner = await run({
        preset,
        noHandleSignals: true,
        taskList: {
          job: async (payload) => {
            tally.add((payload as { id: number }).id);
            if (tally.size >= n) handled();
          },
        },
      });
      await allHandled;
      // Done means completed in the database (graphile-worker deletes a completed job).
      while ((await jobsLeft()) > 0) await new Promise((r) => setTimeout(r, 2));
      const ms = performance.now() - start;
      await runner.stop();
      runner = undefined;
      return ms;
    },
    verify: async (n) => tally.verify(n, 'graphile-worker'),
    close: async () => {
      await runner?.stop();
      await utils.release();
    },
  };
}
