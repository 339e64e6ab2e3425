// Helpers of the CLI tests: run the pgfence command from source as a subprocess.
//
// The CLI runs from source (`node --import tsx src/cli/main.ts`), not from dist/: building in a
// beforeAll would race other test files and developers over dist/ (tsup cleans it first), and
// the source is what is under test. bin/pgfence.js only imports the built copy of that module.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScript, type Finished } from '../support/spawn.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

/** Starts `pgfence …` with only the connection the test gives it (no stray DATABASE_URL / PG*). */
export function cli(args: string[], env: Record<string, string> = {}) {
  const clean: Record<string, string> = { DATABASE_URL: '', PGHOST: '', PGPORT: '', ...env };
  return startScript(CLI, args, clean);
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
