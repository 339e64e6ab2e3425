import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Database } from '../db/database.js';
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
  db: Database,
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
  // Every statement the runner sends goes through the bounded client: a server that stops
  // answering fails the migration instead of hanging it. If the migration fails, the client is
  // destroyed: it may still hold the migration lock or be mid-transaction.
  return db.withClient(async (client) => {
    const bounded = {
      query: (query: string | { text: string; values?: unknown[] }, values?: unknown[]) =>
        typeof query === 'string'
          ? client.query(query, values)
          : client.query(query.text, query.values ?? values),
    };
    const ran = await runner({
      dbClient: bounded as unknown as pg.ClientBase,
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
    // The runner left search_path pointing at our schema; the client goes back to the pool.
    await client.query('RESET search_path');
    return ran.map((m) => ({ name: m.name }));
  });
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
