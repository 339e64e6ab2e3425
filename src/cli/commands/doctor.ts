import type { Command } from 'commander';
import pg from 'pg';
import { resolveConnection, type ConnectionFlags } from '../connection.js';
import { bounded } from '../bounded.js';
import { allHold, doctorJson, doctorText } from '../doctor/report.js';
import { checkReplication } from '../doctor/replication.js';
import { checkSchema } from '../doctor/schema.js';
import { checkClock, checkPooler, checkServer } from '../doctor/session.js';
import { checkTimeouts } from '../doctor/timeouts.js';
import { queryOn, type Check } from '../doctor/check.js';
import { CliError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';
import { validateSchemaName } from '../../options.js';

/** How long doctor waits for a connection, and for any one statement. */
const CONNECT_MS = 5_000;
const STATEMENT_MS = 10_000;

/** The URL without its password, to say what was checked. */
function describeTarget(config: pg.PoolConfig, schema: string): string {
  if (config.connectionString) {
    const url = new URL(config.connectionString);
    url.password = '';
    return `${url.toString()} (schema "${schema}")`;
  }
  return `the PG* environment (schema "${schema}")`;
}

/**
 * `pgfence doctor`: checks that this database setup keeps pgfence's guarantees — replication,
 * poolers, clocks, the schema and the role's privileges, server timeouts — and says why not.
 */
export function registerDoctor(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('doctor')
      .description("check that this database setup keeps pgfence's guarantees, and explain")
      .option('--json', 'print the findings as JSON'),
  ).action(async (flags: ConnectionFlags & { json?: boolean }) => {
    const schema = validateSchemaName(flags.schema ?? 'pgfence');
    const { config } = resolveConnection(flags);
    const target = describeTarget(config, schema);
    const pool = new pg.Pool({
      ...config,
      max: 3,
      connectionTimeoutMillis: CONNECT_MS,
      query_timeout: STATEMENT_MS,
      application_name: 'pgfence-doctor',
    });
    pool.on('error', () => {});
    const query = queryOn(pool);
    try {
      let server: Check;
      try {
        server = await checkServer(query);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (flags.json) {
          process.stdout.write(
            JSON.stringify({ target, ok: false, reachable: false, error: message }, null, 2) + '\n',
          );
        }
        throw new CliError(`cannot reach the database (${target}): ${message}`, EXIT.UNAVAILABLE);
      }
      const checks: Check[] = [
        server,
        await checkReplication(query),
        await checkPooler(pool),
        await checkClock(query),
        await checkSchema(query, schema),
        await checkTimeouts(query),
      ];
      process.stdout.write(flags.json ? doctorJson(target, checks) : doctorText(target, checks));
      done(allHold(checks) ? EXIT.OK : EXIT.FAILED);
    } finally {
      await bounded(pool.end(), 3_000);
    }
  });
}
