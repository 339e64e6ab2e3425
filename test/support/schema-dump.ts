// The installed schema as pg_dump prints it, normalised so that a dump of any test schema reads
// as a dump of the default schema "pgfence": test/schema.sql is compared against it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The schema name test/schema.sql is written for. */
export const DUMPED_SCHEMA = 'pgfence';

/** The serialisation class id derived from a schema name (as migrations/lib/sql-file.js does). */
function classId(schema: string): number {
  return createHash('sha256').update(`pgfence-acquire\0${schema}`).digest().readInt32BE(0);
}

/**
 * A pg_dump whose major version is `major`: `PGFENCE_PG_DUMP` if set, else Debian's layout, else
 * the one on PATH. Null when none matches (pg_dump refuses a newer server, and prints an older
 * one differently).
 */
export async function findPgDump(major: number): Promise<string | null> {
  const candidates = [
    process.env.PGFENCE_PG_DUMP,
    `/usr/lib/postgresql/${major}/bin/pg_dump`,
    'pg_dump',
  ].filter((c): c is string => typeof c === 'string' && c !== '');
  for (const candidate of candidates) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    try {
      const { stdout } = await run(candidate, ['--version']);
      const found = /\(PostgreSQL\) (\d+)/.exec(stdout);
      if (found && Number(found[1]) === major) return candidate;
    } catch {
      // not installed, or not runnable: try the next one
    }
  }
  return null;
}

/** `pg_dump --schema-only --schema=<schema> --no-owner --no-privileges`, normalised. */
export async function dumpSchema(pgDump: string, url: string, schema: string): Promise<string> {
  const { stdout } = await run(
    pgDump,
    ['--schema-only', `--schema=${schema}`, '--no-owner', '--no-privileges', '--dbname', url],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  return normaliseDump(stdout, schema);
}

/**
 * Drops what varies between runs and servers (the \restrict key, version lines) and renames the
 * schema, and the constants derived from its name, to those of DUMPED_SCHEMA.
 */
export function normaliseDump(dump: string, schema: string): string {
  const lines = dump
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line) && !/^-- Dumped (from|by) /.test(line));
  return lines
    .join('\n')
    .replace(new RegExp(`\\b${schema}\\b`, 'g'), DUMPED_SCHEMA)
    .replace(
      new RegExp(`(?<![0-9])${classId(schema)}(?![0-9])`, 'g'),
      String(classId(DUMPED_SCHEMA)),
    )
    .replace(/\n{3,}/g, '\n\n');
}
