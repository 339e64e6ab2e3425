// The demo with `--quick --url <the suite's server>` (PostgreSQL 15 in CI's second run, the
// embedded 18 otherwise), with plain log output as when stdout is not a terminal: the summary
// must pass and the demo's schema must be gone afterwards.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { testUrl } from '../support/database.js';
import { demo } from '../support/cli.js';

describe('the demo with --url', () => {
  it('works in a schema of its own on the given server, prints a verified summary and drops the schema', async () => {
    const run = await demo(['--quick', '--url', testUrl(), '--jobs', '40']).finished;
    expect(run.stderr).toBe('');
    const out = run.stdout;
    expect(out).toMatch(/^ {2}jobs {11}40\/40 done exactly once \(0 twice, 0 never\)$/m);
    const refused = Number(/(\d+) stale refused by is_current\(\)/.exec(out)?.[1]);
    expect(refused).toBeGreaterThanOrEqual(1);
    const takeovers = Number(/takeovers {6}(\d+) leases taken over/.exec(out)?.[1]);
    expect(takeovers).toBeGreaterThanOrEqual(1);
    expect(out).toMatch(/ 0 overlaps$/m);
    expect(out).toMatch(/paused \(SIGSTOP\)/);
    expect(out).toMatch(/killed \(SIGKILL\)/);
    expect(out).toMatch(/^ {2}result {9}PASS$/m);
    // No terminal: no cursor movement or colour codes.
    expect(out).not.toContain('\u001b[');
    expect(run.code).toBe(0);
    const schema = /schema (\S+) migrated/.exec(out)?.[1];
    expect(schema).toMatch(/^pgfence_demo_/);
    const client = new pg.Client({ connectionString: testUrl() });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
        schema,
      ]);
      expect(rows).toEqual([]);
    } finally {
      await client.end();
    }
  }, 150_000);
});
