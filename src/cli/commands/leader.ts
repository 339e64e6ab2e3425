import type { Command } from 'commander';
import type { LeaderInfo } from '../../index.js';
import { openFence, type ConnectionFlags } from '../connection.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';

interface LeaderFlags extends ConnectionFlags {
  json?: boolean;
  watch?: boolean;
}

function leaderJson(leader: LeaderInfo | null): unknown {
  return leader === null
    ? null
    : {
        value: leader.value,
        owner: leader.owner,
        token: leader.token.toString(),
        expiresAt: leader.expiresAt.toISOString(),
      };
}

function leaderText(name: string, leader: LeaderInfo | null): string {
  return leader === null
    ? `nobody leads "${name}"\n`
    : `${leader.value ?? '-'}  owner ${leader.owner}  token ${leader.token}  ` +
        `expires ${leader.expiresAt.toISOString()}\n`;
}

/**
 * `pgfence leader <name>`: who leads an election (exit 1 if nobody does), or with --watch every
 * change of leader as it happens, until interrupted.
 */
export function registerLeader(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('leader')
      .description('show who leads an election (campaign), or --watch every change of leader')
      .argument('<name>', 'the election name')
      .option('--json', 'print JSON (with --watch: one JSON document per line)')
      .option('--watch', 'print every change of leader until interrupted'),
  ).action(async (name: string, flags: LeaderFlags) => {
    const open = openFence(flags);
    const print = (leader: LeaderInfo | null): void => {
      process.stdout.write(
        flags.json
          ? JSON.stringify(leaderJson(leader), null, flags.watch ? 0 : 2) + '\n'
          : leaderText(name, leader),
      );
    };
    try {
      if (!flags.watch) {
        const leader = await open.fence.leader(name);
        print(leader);
        done(leader === null ? EXIT.FAILED : EXIT.OK);
        return;
      }
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        for await (const leader of open.fence.observe(name, { signal: stop.signal })) print(leader);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      done(EXIT.OK);
    } finally {
      await open.close();
    }
  });
}
