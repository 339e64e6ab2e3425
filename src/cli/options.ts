import { Option, type Command } from 'commander';

/** `--url` and `--schema`, shared by every command that talks to the database. */
export function addConnectionOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--url <url>',
        'PostgreSQL connection URL (default: $DATABASE_URL, else the PG* variables)',
      ),
    )
    .addOption(
      new Option('--schema <name>', 'schema holding the pgfence tables').default('pgfence'),
    );
}
