// A bench worker process: opens the subjects it is told to, runs rounds on request and sends
// back each round's counts and latency histogram. Started by ProcessArena, over IPC only.
import { openSubjects, type Subject } from './lib/arena.js';
import { driveRound, toWire } from './lib/drive.js';
import { errorMessage, type Runner, type VariantEnv } from './lib/variants.js';

type Command =
  | { type: 'open'; subjects: Subject[]; env: VariantEnv; callers: number }
  | { type: 'round'; id: string; durationMs: number }
  | { type: 'close' };

let runners = new Map<string, Runner>();
let callers = 1;

function reply(message: unknown): void {
  process.send?.(message as object);
}

// The parent went away (interrupted): nothing left to report to.
process.on('disconnect', () => process.exit(0));

process.on('message', (command: Command) => {
  void (async () => {
    try {
      switch (command.type) {
        case 'open': {
          callers = command.callers;
          const opened = await openSubjects(command.subjects, command.env);
          runners = opened.runners;
          reply({ type: 'opened', unavailable: [...opened.unavailable] });
          break;
        }
        case 'round': {
          const runner = runners.get(command.id);
          if (!runner) throw new Error(`subject ${command.id} is not open`);
          reply({
            type: 'round',
            result: toWire(await driveRound(runner, callers, command.durationMs)),
          });
          break;
        }
        case 'close':
          await Promise.allSettled([...runners.values()].map((r) => r.close()));
          reply({ type: 'closed' });
          process.disconnect();
          break;
      }
    } catch (error) {
      reply({ type: 'error', message: errorMessage(error) });
    }
  })();
});
