// The demo (examples/demo/, `npm run demo -- --quick`) end to end, as a newcomer runs it: on
// the embedded PostgreSQL it starts itself (whatever server the suite uses), with worker processes, a SIGSTOPped worker and a
// SIGKILLed one; its summary, checked by SQL, must say every job was done exactly once, with
// stale writes refused and leases taken over. And Ctrl-C, which must leave no server and no
// directory behind. cli-demo-url.test.ts runs it against the suite's own server with --url.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAlive } from '../support/postgres-process.js';
import type { DemoSummary } from '../../examples/demo/verify.js';
import { demo, until } from '../support/cli.js';

type Summary = DemoSummary & { type: 'summary' };

interface Event {
  type: string;
  text: string;
  worker?: number;
}

function parse(stdout: string): { events: Event[]; summary: Summary } {
  const docs = stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Event | Summary);
  const summary = docs.find((d): d is Summary => d.type === 'summary');
  if (!summary) throw new Error(`no summary in:\n${stdout}`);
  return { events: docs.filter((d): d is Event => d.type !== 'summary'), summary };
}

function expectVerified(summary: Summary): void {
  expect(summary.failures).toEqual([]);
  expect(summary.ok).toBe(true);
  expect(summary.doneOnce).toBe(summary.jobs);
  expect(summary.doneTwice).toBe(0);
  expect(summary.notDone).toBe(0);
  expect(summary.staleWritesRefused).toBeGreaterThanOrEqual(1);
  expect(summary.takeovers).toBeGreaterThanOrEqual(1);
  expect(summary.killedWorkerJobsRedone).toBe(summary.killedWorkerJobs);
  expect(summary.overlaps).toBe(0);
  expect(summary.sections).toBeGreaterThan(0);
}

describe('the demo (examples/demo)', () => {
  it('--quick runs end to end on its own embedded PostgreSQL, verified, and cleans up', async () => {
    const started = performance.now();
    const run = await demo(['--quick', '--json']).finished;
    const elapsed = performance.now() - started;
    expect(run.stderr).toBe('');
    const { events, summary } = parse(run.stdout);
    expectVerified(summary);
    expect(run.code).toBe(0);
    for (const type of ['pause', 'resume', 'kill', 'takeover', 'refused']) {
      expect(events.map((e) => e.type)).toContain(type);
    }
    // The refused write is the paused worker's, after it woke up.
    const paused = events.find((e) => e.type === 'pause')!.worker;
    expect(events.some((e) => e.type === 'refused' && e.worker === paused)).toBe(true);
    const dir = /PostgreSQL is up \((.+)\)/.exec(events.map((e) => e.text).join('\n'))?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    // "Under ~20 s" is for a quiet machine; here (2 cores shared by the whole CI, each worker
    // loading the sources through tsx) it only has to finish in a sane time.
    expect(elapsed).toBeLessThan(120_000);
  }, 150_000);

  it.each([
    [['--workers', 'many'], /--workers takes a whole number/],
    [['--workers', '2'], /--workers takes a whole number from 3/],
    [['--ttl', '10ms'], /--ttl must be at least 500ms/],
    [['--bogus'], /unknown option '--bogus'/],
  ])('refuses %j with exit 2 and one line, before starting anything', async (args, message) => {
    const run = await demo(args).finished;
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^demo: /);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');
  });

  it('on Ctrl-C stops its workers and its server, removes the directory and exits 130', async () => {
    const child = demo(['--json']);
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    await until(() => /workers start/.test(stdout), 'the workers to start', 45_000);
    const dir = /PostgreSQL is up \((.+?)\)/.exec(stdout)?.[1];
    expect(dir).toBeDefined();
    const postmaster = Number(readFileSync(`${dir}/data/postmaster.pid`, 'utf8').split('\n')[0]);
    expect(isAlive(postmaster)).toBe(true);
    child.kill('SIGINT');
    const result = await child.finished;
    expect(result.code).toBe(130);
    expect(existsSync(dir!)).toBe(false);
    await until(() => !isAlive(postmaster), 'the server to stop', 10_000);
  }, 150_000);
});
