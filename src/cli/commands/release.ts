import type { Command } from 'commander';
import { explainDbError } from '../../db/errors.js';
import { qualified } from '../../db/identifiers.js';
import { releaseParams, releaseSql } from '../../lease/lease-sql.js';
import { openFence, type ConnectionFlags } from '../connection.js';
import { CliError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import { addConnectionOptions } from '../options.js';

interface ReleaseFlags extends ConnectionFlags {
  token?: string;
  force?: boolean;
}

interface LeaseRow {
  token: string;
  owner: string;
  live: boolean;
  expires_in_ms: number;
}

/**
 * `pgfence release <key>`: an operator's forced release. Locks the lease row, refuses a live
 * lease unless --force (or one whose token is not --token), then releases that term through
 * the library's own release_leases, which deletes it and wakes waiters as a normal release does.
 */
export function registerRelease(program: Command, done: (code: number) => void): void {
  addConnectionOptions(
    program
      .command('release')
      .description("force-release a lease (an operator's tool: its holder is not asked)")
      .argument('<key>', 'the lease key')
      .option('--token <token>', 'release only if the lease has this fencing token')
      .option('--force', 'release even though the lease is live (not yet expired)'),
  ).action(async (key: string, flags: ReleaseFlags) => {
    if (key.length === 0) throw new UsageError('the key must not be empty');
    if (flags.token !== undefined && !/^\d{1,19}$/.test(flags.token)) {
      throw new UsageError(`--token takes a fencing token (a whole number), got "${flags.token}"`);
    }
    const open = openFence(flags);
    const table = qualified(open.fence.schema, 'leases');
    const client = await open.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<LeaseRow>(
        `SELECT token::text AS token, owner, expires_at > clock_timestamp() AS live,
                (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 AS expires_in_ms
         FROM ${table} WHERE key = $1 FOR UPDATE`,
        [key],
      );
      const row = rows[0];
      if (!row) throw new CliError(`no lease on "${key}"`);
      if (flags.token !== undefined && row.token !== flags.token) {
        throw new CliError(`the lease on "${key}" has token ${row.token}, not ${flags.token}`);
      }
      if (row.live && !flags.force) {
        throw new CliError(
          `the lease on "${key}" is live (token ${row.token}, owner ${row.owner}, ` +
            `expires in ${(row.expires_in_ms / 1000).toFixed(1)}s): pass --force to release it anyway`,
        );
      }
      // The library's own release of that term (key, token, owner), which also wakes waiters.
      await client.query(
        releaseSql(open.fence.schema),
        releaseParams(row.owner, [{ key, token: BigInt(row.token) }], false),
      );
      await client.query('COMMIT');
      process.stdout.write(
        `released "${key}" (token ${row.token}, owner ${row.owner}${row.live ? ', was live' : ', had expired'})\n`,
      );
      done(EXIT.OK);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (error instanceof CliError) throw error;
      // No leases table in that schema: say what to run, as the library's own calls do.
      throw explainDbError(error, open.fence.schema);
    } finally {
      client.release(broken);
      await open.close();
    }
  });
}
