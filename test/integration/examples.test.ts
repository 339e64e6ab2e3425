// The README's runnable examples of the lock kinds (examples/kinds/), run as a reader would
// run them: each a process of its own on the test database, in a schema of its own. Each
// prints what its kind guarantees, as it saw it.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { newPool, testUrl, uniqueSchema } from '../support/database.js';
import { runScript } from '../support/spawn.js';

const examples = join(dirname(fileURLToPath(import.meta.url)), '../../examples/kinds');

describe('the runnable examples (examples/kinds)', () => {
  const schemas: string[] = [];
  const admin = newPool({ max: 1 });
  afterAll(async () => {
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  const run = async (name: string): Promise<string[]> => {
    const schema = uniqueSchema('ex');
    schemas.push(schema);
    const done = await runScript(join(examples, `${name}.ts`), [], {
      DATABASE_URL: testUrl(),
      PGFENCE_SCHEMA: schema,
    });
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    return done.stdout.trim().split('\n');
  };

  it('shared.ts: readers overlap, the writer is alone with a larger token', async () => {
    expect(await run('shared')).toEqual([
      'readers at once: 3',
      'writer token above every reader token: true',
    ]);
  });

  it('semaphore.ts: never more holders than permits, a token each, a mismatch refused', async () => {
    expect(await run('semaphore')).toEqual([
      'holders at once: 2 of 2 permits; 6 distinct tokens for 6 calls',
      'a third tryLease while both permits are held: null',
      'another permit count: PERMITS_MISMATCH',
    ]);
  });

  it('several-keys.ts: overlapping sets in opposite orders, no deadlock, nothing lost', async () => {
    expect(await run('several-keys')).toEqual([
      '20 transfers, no deadlock; balances 100 and 100, total 200',
    ]);
  });

  it('election.ts: one leader at a time, hand-over on resign, every term observed', async () => {
    const lines = await run('election');
    expect(lines.slice(0, 2)).toEqual(['leader: host-a', 'leader: host-b, later term: true']);
    // Between the two terms the observer may or may not have found nobody leading.
    expect(lines[2]).toMatch(
      /^observed: nobody -> host-a \(term \d+\) (-> nobody )?-> host-b \(term \d+\) -> nobody$/,
    );
  });
});
