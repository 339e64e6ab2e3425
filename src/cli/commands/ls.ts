import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { openFence, type ConnectionFlags } from '../connection.js';
import { parseDuration } from '../duration.js';
import { EXIT } from '../exit-codes.js';
import { inspectionJson, inspectionText } from '../format.js';
import { addConnectionOptions } from '../options.js';

interface LsFlags extends ConnectionFlags {
  prefix?: string;
  json?: boolean;
  watch?: boolean;
  interval: string;
}

/** `pgfence ls`: live leases and advisory locks, once or refreshed with --watch. */
export function registerLs(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('ls')
      .description('list live leases and advisory locks taken through pgfence')
      .option('--prefix <prefix>', 'only keys starting with this prefix')
      .option('--json', 'print JSON (with --watch: one JSON document per line)')
      .option('--watch', 'refresh until interrupted')
      .option('--interval <duration>', 'refresh interval of --watch', '1s'),
  ).action(async (flags: LsFlags) => {
    const intervalMs = parseDuration(flags.interval, '--interval');
    const open = openFence(flags);
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const clear = process.stdout.isTTY && !flags.json;
    try {
      for (;;) {
        const inspection = await open.fence.inspect(
          flags.prefix === undefined ? {} : { prefix: flags.prefix },
        );
        const text = flags.json
          ? JSON.stringify(inspectionJson(inspection), null, flags.watch ? 0 : 2) + '\n'
          : inspectionText(inspection);
        if (flags.watch && clear) {
          process.stdout.write(`\x1b[H\x1b[2J${new Date().toISOString()}\n\n`);
        }
        process.stdout.write(text);
        if (!flags.watch) break;
        if (!clear && !flags.json) process.stdout.write('\n');
        try {
          await sleep(intervalMs, undefined, { signal: stop.signal });
        } catch {
          break;
        }
      }
      done(EXIT.OK);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await open.close();
    }
  });
}
