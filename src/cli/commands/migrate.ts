import type { Command } from 'commander';
import { openFence, type ConnectionFlags } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';

/** `pgfence migrate`: creates or updates the pgfence schema; safe to run from many places at once. */
export function registerMigrate(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('migrate')
      .description('create or update the pgfence schema (idempotent, safe to run concurrently)'),
  ).action(async (flags: ConnectionFlags) => {
    const open = openFence(flags);
    try {
      const ran = await open.fence.migrate();
      for (const m of ran) process.stdout.write(`applied ${m.name}\n`);
      process.stdout.write(`schema "${open.fence.schema}" is up to date\n`);
      done(EXIT.OK);
    } finally {
      await open.close();
    }
  });
}
