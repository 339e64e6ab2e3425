import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { InvalidArgumentError } from '../errors.js';

/** What `fence.migrate()` accepts. */
export interface MigrateOptions {
  /** `up` (default) applies pending migrations; `down` reverts them. */
  direction?: 'up' | 'down';
  /** How many migrations to apply or revert. Default: all for `up`, one for `down`. */
  count?: number;
}

/** A migration that ran, as node-pg-migrate reports it. */
export interface MigrationRun {
  name: string;
}

export const MIGRATIONS_TABLE = 'pgfence_migrations';

/**
 * Runs pgfence's migrations in `schema`. Concurrent callers queue on a session advisory lock
 * derived from the schema name (node-pg-migrate's `wait` mode), so four processes migrating at
 * once run each migration exactly once and all return success.
 * @internal
 */
export async function runMigrations(
  pool: pg.Pool,
  schema: string,
  options: MigrateOptions = {},
): Promise<MigrationRun[]> {
  const direction = options.direction ?? 'up';
  if (direction !== 'up' && direction !== 'down') {
    throw new InvalidArgumentError(`"direction" must be "up" or "down", got ${String(direction)}`);
  }
  const count = options.count ?? (direction === 'up' ? Infinity : 1);
  if (!(count === Infinity || (Number.isInteger(count) && count >= 1))) {
    throw new InvalidArgumentError(`"count" must be a whole number above 0 or Infinity`);
  }
  const { runner } = await import('node-pg-migrate');
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client whose connection dies emits 'error'; unheard, that would crash the
  // process. The failing query rejects with the same error, which is what the caller sees.
  const onClientError = (error: Error): void => {
    broken = error;
  };
  client.on('error', onClientError);
  try {
    const ran = await runner({
      dbClient: client,
      dir: migrationsDir(),
      direction,
      count,
      schema,
      createSchema: true,
      migrationsSchema: schema,
      migrationsTable: MIGRATIONS_TABLE,
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      lockValue: migrationLockId(schema),
      logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    });
    // The runner left search_path pointing at our schema; the client goes back to the caller's pool.
    await client.query('RESET search_path');
    return ran.map((m) => ({ name: m.name }));
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    // A client whose migration failed may still hold the migration lock or be mid-transaction:
    // destroy it rather than hand it back.
    client.off('error', onClientError);
    client.release(broken);
  }
}

/** A 48-bit session advisory lock id per schema, so installs in different schemas never queue. */
export function migrationLockId(schema: string): number {
  return createHash('sha256').update(`pgfence-migrate\0${schema}`).digest().readIntBE(0, 6);
}

/** The package's `migrations/` folder, found from this module whether it runs from src/ or dist/. */
export function migrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i += 1) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(candidate, '1764130000000_leases.js'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('pgfence could not find its migrations/ folder next to its code');
}
