import type { Command } from 'commander';
import { openFence, type ConnectionFlags } from '../connection.js';
import { parseCount } from '../duration.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';

/** `pgfence reap`: one reaper pass, deleting leases that expired by the database clock. */
export function registerReap(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('reap')
      .description('delete expired leases (one pass, in batches)')
      .option('--batch-size <n>', 'rows deleted per statement', '1000'),
  ).action(async (flags: ConnectionFlags & { batchSize: string }) => {
    const batchSize = parseCount(flags.batchSize, '--batch-size', 1, 1_000_000);
    const open = openFence(flags);
    try {
      const deleted = await open.fence.reap({ batchSize });
      process.stdout.write(`deleted ${deleted} expired lease${deleted === 1 ? '' : 's'}\n`);
      done(EXIT.OK);
    } finally {
      await open.close();
    }
  });
}
