// Helpers of the CLI tests: run the pgfence command from source as a subprocess.
//
// The CLI runs from source (`node --import tsx src/cli/main.ts`), not from dist/: building in a
// beforeAll would race other test files and developers over dist/ (tsup cleans it first), and
// the source is what is under test. bin/pgfence.js only imports the built copy of that module.
import { existsSync, mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { testUrl, uniqueSchema } from './database.js';
import { startScript, type Finished } from './spawn.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

/** The demo's entry point: `npm run demo` runs it the same way (it is not part of the package). */
export const DEMO = join(dirname(fileURLToPath(import.meta.url)), '../../examples/demo/main.ts');

/** Starts `pgfence …` with only the connection the test gives it (no stray DATABASE_URL / PG*). */
export function cli(args: string[], env: Record<string, string> = {}) {
  const clean: Record<string, string> = { DATABASE_URL: '', PGHOST: '', PGPORT: '', ...env };
  return startScript(CLI, args, clean);
}

/** Starts the demo (`npm run demo -- …`), with only the connection the test gives it. */
export function demo(args: string[], env: Record<string, string> = {}) {
  const clean: Record<string, string> = { DATABASE_URL: '', PGHOST: '', PGPORT: '', ...env };
  return startScript(DEMO, args, clean);
}

/** Runs `pgfence …` to completion. */
export const pgfence = (args: string[], env?: Record<string, string>): Promise<Finished> =>
  cli(args, env).finished;

/** Waits until `check` is true, polling; fails the test after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The non-empty lines of a file, or none if it does not exist yet. */
export const lines = async (file: string): Promise<string[]> =>
  existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter(Boolean) : [];

/** What a CLI test file runs its commands against. */
export interface CliSchema {
  url: string;
  /** A schema of its own, migrated by `pgfence migrate` before the file's tests. */
  schema: string;
  /** A scratch directory for the commands' files. */
  dir: string;
  /** A small pool for looking at and changing the schema's tables directly. */
  admin: pg.Pool;
  /** The connection options: `--url <url> --schema <schema>`. */
  db(): string[];
}

/**
 * A schema and scratch directory for one CLI test file: the schema is migrated by the CLI itself
 * in beforeAll (which must succeed), and dropped with the directory in afterAll. Call it at the
 * top level of the file.
 */
export function useCliSchema(): CliSchema {
  const url = testUrl();
  const schema = uniqueSchema('cli');
  const dir = mkdtempSync(join(tmpdir(), 'pgfence-cli-test-'));
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  const db = (): string[] => ['--url', url, '--schema', schema];

  beforeAll(async () => {
    const migrated = await pgfence(['migrate', ...db()]);
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toMatch(/applied 1764130000000_leases/);
  });

  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  });

  return { url, schema, dir, admin, db };
}
