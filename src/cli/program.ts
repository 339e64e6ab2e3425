import { Command, CommanderError } from 'commander';
import { registerDemo } from './commands/demo.js';
import { registerDoctor } from './commands/doctor.js';
import { registerLeader } from './commands/leader.js';
import { registerLs } from './commands/ls.js';
import { registerMigrate } from './commands/migrate.js';
import { registerReap } from './commands/reap.js';
import { registerRelease } from './commands/release.js';
import { registerRun } from './commands/run.js';
import { describeFailure } from './errors.js';
import { EXIT } from './exit-codes.js';
import { packageVersion } from './version.js';

/**
 * Parses `argv` (without node and the script), runs the command and resolves with the exit
 * code. Every failure is reported as one line on stderr.
 */
export async function runCli(argv: string[]): Promise<number> {
  let code: number = EXIT.OK;
  const done = (c: number): void => {
    code = c;
  };
  const program = new Command('pgfence')
    .description('Distributed locks, leases and fencing tokens on PostgreSQL.')
    .version(packageVersion(), '-V, --version', 'print the version of pgfence')
    .enablePositionalOptions()
    .showSuggestionAfterError(false)
    .helpCommand(true)
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => write(`pgfence: ${text.replace(/^error: /, '').trim()}\n`),
    });
  registerDemo(program, done);
  registerRun(program, done);
  registerLs(program, done);
  registerLeader(program, done);
  registerMigrate(program, done);
  registerReap(program, done);
  registerRelease(program, done);
  registerDoctor(program, done);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; everything else it reports is bad usage.
      return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const { exitCode, message } = describeFailure(error);
    process.stderr.write(`pgfence: ${message}\n`);
    return exitCode;
  }
}
