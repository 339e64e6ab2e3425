// A real PgBouncer (the Debian package) on a spare loopback port with a config of its own,
// in front of one PostgreSQL server. It refuses to run as root, so as root it runs as the
// `postgres` user. It daemonizes; the pid in its pidfile is the one process stopped.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, isAlive } from './postgres-process.js';
import { waitGone } from './pids.js';
import { sleep } from './wait.js';

const run = promisify(execFile);
export const PGBOUNCER = process.env.PGFENCE_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface PgBouncer {
  port: number;
  /** `postgres://user@127.0.0.1:<port>/database` through the pooler. */
  url(database: string, user?: string): string;
  /** Runs a command on the admin console (`KILL db`, `RESUME db`, `SHOW POOLS`). */
  admin(command: string): Promise<Record<string, unknown>[]>;
  /** Stops PgBouncer and starts it again on the same port and config (every connection drops). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function hasPgBouncer(): boolean {
  return existsSync(PGBOUNCER);
}

/** Starts PgBouncer in `mode` in front of 127.0.0.1:`serverPort`; `users` may log in (trust). */
export async function startPgBouncer(options: {
  serverPort: number;
  mode: 'session' | 'transaction' | 'statement';
  users?: string[];
  poolSize?: number;
  /** The server's password for the users (the embedded test server has one). */
  serverPassword?: string;
}): Promise<PgBouncer> {
  const dir = await mkdtemp(join(tmpdir(), 'pgfence-pgbouncer-'));
  await chmod(dir, 0o777);
  const port = await freePort();
  const users = options.users ?? ['postgres'];
  // Clients log in by trust; PgBouncer logs in to the server with the password written here
  // (the one in [databases] is not used for a user it does not force).
  const password = options.serverPassword ?? '';
  await writeFile(
    join(dir, 'users.txt'),
    users.map((u) => `"${u}" "${password}"`).join('\n') + '\n',
  );
  await writeFile(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=127.0.0.1 port=${options.serverPort}` +
        (options.serverPassword ? ` password=${options.serverPassword}` : ''),
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      `pool_mode = ${options.mode}`,
      `default_pool_size = ${options.poolSize ?? 5}`,
      // The admin console (KILL, PAUSE, RESUME, SHOW) for the first user.
      `admin_users = ${users[0]}`,
      'max_client_conn = 200',
      'ignore_startup_parameters = extra_float_digits,options',
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  const args = ['-d', join(dir, 'pgbouncer.ini')];
  const pidfile = join(dir, 'pgbouncer.pid');
  const launch = async (): Promise<number> => {
    await rm(pidfile, { force: true });
    await run(
      asRoot ? 'runuser' : PGBOUNCER,
      asRoot ? ['-u', 'postgres', '--', PGBOUNCER, ...args] : args,
    );
    const deadline = performance.now() + 10_000;
    for (;;) {
      const text = await readFile(pidfile, 'utf8').catch(() => '');
      const n = Number.parseInt(text, 10);
      if (Number.isInteger(n) && n > 0) return n;
      if (performance.now() > deadline) {
        const log = await readFile(join(dir, 'pgbouncer.log'), 'utf8').catch(() => '');
        throw new Error(`pgbouncer did not start: ${log}`);
      }
      await sleep(50);
    }
  };
  let started: number;
  try {
    started = await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const onExit = () => {
    if (isAlive(started)) process.kill(started, 'SIGKILL');
  };
  process.once('exit', onExit);
  const halt = async (): Promise<void> => {
    if (isAlive(started)) {
      process.kill(started, 'SIGTERM');
      if (!(await waitGone(started, 5_000))) process.kill(started, 'SIGKILL');
    }
  };
  return {
    port,
    url: (database, user = 'postgres') => `postgres://${user}@127.0.0.1:${port}/${database}`,
    async admin(command) {
      const client = new pg.Client({
        connectionString: `postgres://${users[0]}@127.0.0.1:${port}/pgbouncer`,
      });
      client.on('error', () => {});
      await client.connect();
      try {
        // The admin console speaks the simple protocol only.
        const result = await client.query(command);
        return result.rows as Record<string, unknown>[];
      } finally {
        await client.end().catch(() => {});
      }
    },
    async restart() {
      await halt();
      started = await launch();
    },
    async stop() {
      process.off('exit', onExit);
      await halt();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
