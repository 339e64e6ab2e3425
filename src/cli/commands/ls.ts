import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Inspection } from '../../index.js';
import { openFence, type ConnectionFlags } from '../connection.js';
import { formatDuration, parseDuration } from '../duration.js';
import { EXIT } from '../exit-codes.js';
import { colorsFor, inspectionJson, inspectionText } from '../ls-view.js';
import { addConnectionOptions } from '../options.js';
import { Screen } from '../screen.js';

interface LsFlags extends ConnectionFlags {
  prefix?: string;
  json?: boolean;
  watch?: boolean;
  interval: string;
  expiringWithin: string;
}

/** `pgfence ls`: live leases, their waiters and advisory locks, once or refreshed with --watch. */
export function registerLs(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('ls')
      .description('list live leases, their waiters and the advisory locks held or awaited')
      .option('--prefix <prefix>', 'only keys starting with this prefix')
      .option('--json', 'print JSON (with --watch: one JSON document per line)')
      .option('--watch', 'refresh until interrupted')
      .option('--interval <duration>', 'refresh interval of --watch', '1s')
      .option(
        '--expiring-within <duration>',
        'mark leases with less than this left (and under a fifth of their term)',
        '5s',
      ),
  ).action(async (flags: LsFlags) => {
    const intervalMs = parseDuration(flags.interval, '--interval');
    const withinMs = parseDuration(flags.expiringWithin, '--expiring-within');
    const open = openFence(flags);
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // A stopped wait for the database ends at once: Ctrl-C does not wait for a slow answer.
    const stopped = new Promise<null>((resolve) =>
      stop.signal.addEventListener('abort', () => resolve(null), { once: true }),
    );
    const colors = colorsFor(process.stdout);
    const render = (inspection: Inspection): string =>
      flags.json
        ? JSON.stringify(inspectionJson(inspection, withinMs), null, flags.watch ? 0 : 2) + '\n'
        : inspectionText(inspection, withinMs, colors);
    // --watch on a terminal redraws in place; anywhere else each frame follows the last one.
    const screen = flags.watch && !flags.json ? new Screen(process.stdout) : null;
    const every = `Every ${formatDuration(intervalMs)}: pgfence ls`;
    try {
      for (;;) {
        const inspection = await Promise.race([
          open.fence.inspect(flags.prefix === undefined ? {} : { prefix: flags.prefix }),
          stopped,
        ]);
        if (inspection === null) break;
        const text = render(inspection);
        if (screen === null) process.stdout.write(text);
        else screen.frame(`${colors.bold(every)}  ${inspection.at.toISOString()}\n\n${text}`);
        if (!flags.watch) break;
        try {
          await sleep(intervalMs, undefined, { signal: stop.signal });
        } catch {
          break;
        }
      }
      done(EXIT.OK);
    } finally {
      screen?.end();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await open.close();
    }
  });
}
