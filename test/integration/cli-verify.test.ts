// The demo's SQL verification, on hand-made demo tables: it passes a run that did everything
// right, and names each thing a broken run got wrong (a job done twice or never, overlapping
// critical sections, no stale write refused, no takeover, a killed worker's job left undone).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoTables } from '../../examples/demo/tables.js';
import { verifyDemo } from '../../examples/demo/verify.js';
import { testUrl, uniqueSchema } from '../support/database.js';

let pool: pg.Pool;
const schemas: string[] = [];

beforeAll(() => {
  pool = new pg.Pool({ connectionString: testUrl(), max: 2 });
});
afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

/** Demo tables with 3 jobs, and a script of events: [worker, kind, resource, token, ok]. */
async function run(
  events: [number, string, string, number, boolean | null][],
  done: Record<string, [count: number, by: number, token: number]>,
  sections: [resource: string, worker: number, start: number, end: number][] = [],
): Promise<string> {
  const schema = uniqueSchema('verify');
  schemas.push(schema);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  await createDemoTables(pool, schema, 3);
  for (const [worker, kind, resource, token, ok] of events) {
    await pool.query(
      `INSERT INTO "${schema}".demo_events (worker, kind, resource, token, ok) VALUES ($1, $2, $3, $4, $5)`,
      [worker, kind, resource, token, ok],
    );
  }
  for (const [key, [count, by, token]] of Object.entries(done)) {
    await pool.query(
      `UPDATE "${schema}".demo_jobs SET done_count = $2, done_by = $3, done_token = $4 WHERE key = $1`,
      [key, count, by, token],
    );
  }
  for (const [resource, worker, start, end] of sections) {
    await pool.query(
      `INSERT INTO "${schema}".demo_sections (resource, worker, started_at, ended_at)
       VALUES ($1, $2, 'epoch'::timestamptz + $3 * interval '1 s', 'epoch'::timestamptz + $4 * interval '1 s')`,
      [resource, worker, start, end],
    );
  }
  return schema;
}

// A good run: w2 is paused holding job:0001 (token 1), w1 takes it over (token 4) and does it,
// w2's late write is refused; w3 is killed holding job:0002 (token 2), w1 redoes it (token 5).
const good: [number, string, string, number, boolean | null][] = [
  [2, 'acquire', 'job:0001', 1, null],
  [3, 'acquire', 'job:0002', 2, null],
  [1, 'acquire', 'job:0003', 3, null],
  [1, 'write', 'job:0003', 3, true],
  [1, 'release', 'job:0003', 3, true],
  [1, 'acquire', 'job:0001', 4, null],
  [1, 'write', 'job:0001', 4, true],
  [1, 'release', 'job:0001', 4, true],
  [2, 'write', 'job:0001', 1, false],
  [2, 'release', 'job:0001', 1, false],
  [1, 'acquire', 'job:0002', 5, null],
  [1, 'write', 'job:0002', 5, true],
  [1, 'release', 'job:0002', 5, true],
];
const goodDone: Record<string, [number, number, number]> = {
  'job:0001': [1, 1, 4],
  'job:0002': [1, 1, 5],
  'job:0003': [1, 1, 3],
};

describe('the demo verification', () => {
  it('passes a run that did everything right', async () => {
    const schema = await run(good, goodDone, [
      ['demo:report', 1, 0, 1],
      ['demo:report', 4, 1, 2],
    ]);
    const summary = await verifyDemo(pool, schema, { paused: 2, killed: 3 });
    expect(summary.failures).toEqual([]);
    expect(summary).toMatchObject({
      ok: true,
      jobs: 3,
      doneOnce: 3,
      staleWritesRefused: 1,
      takeovers: 2,
      killedWorkerJobs: 1,
      killedWorkerJobsRedone: 1,
      overlaps: 0,
      sections: 2,
    });
  });

  it('names everything a broken run got wrong', async () => {
    const schema = await run(
      // Nobody took over, no write was refused, the killed worker's job was never done.
      good.filter(
        ([w, kind, resource]) => !(w === 2 && kind === 'write') && resource !== 'job:0002',
      ),
      { 'job:0001': [2, 1, 1], 'job:0003': [1, 1, 3] },
      [
        ['demo:cache', 1, 0, 2],
        ['demo:cache', 4, 1, 3],
      ],
    );
    await pool.query(
      `INSERT INTO "${schema}".demo_events (worker, kind, resource, token, ok) VALUES (3, 'acquire', 'job:0002', 2, NULL)`,
    );
    const summary = await verifyDemo(pool, schema, { paused: 2, killed: 3 });
    expect(summary.ok).toBe(false);
    expect(summary.doneTwice).toBe(1);
    expect(summary.notDone).toBe(1);
    expect(summary.overlaps).toBe(1);
    expect(summary.failures).toEqual(
      expect.arrayContaining([
        '1 jobs were never done',
        '1 jobs were done more than once',
        '1 overlapping critical sections',
        expect.stringMatching(/no stale write was refused/),
        '1 unfinished jobs of the killed worker were not done by another',
      ]),
    );
  });

  it('fails a run in which the faults never happened', async () => {
    const schema = await run(good, goodDone);
    const summary = await verifyDemo(pool, schema, { paused: null, killed: null });
    expect(summary.ok).toBe(false);
    expect(summary.failures.join('\n')).toMatch(/before a worker could be paused/);
    expect(summary.failures.join('\n')).toMatch(/before a worker could be killed/);
  });
});
