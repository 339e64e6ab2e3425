// A real PgBouncer (the Debian package) on a spare loopback port with a config of its own,
// in front of one PostgreSQL server. It refuses to run as root, so as root it runs as the
// `postgres` user. It daemonizes; the pid in its pidfile is the one process stopped.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, isAlive } from './postgres-process.js';
import { waitGone } from './pids.js';
import { sleep } from './wait.js';

const run = promisify(execFile);
export const PGBOUNCER = process.env.PGFENCE_PGBOUNCER ?? '/usr/sbin/pgbouncer';

export interface PgBouncer {
  port: number;
  /** `postgres://user@127.0.0.1:<port>/database` through the pooler. */
  url(database: string, user?: string): string;
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
}): Promise<PgBouncer> {
  const dir = await mkdtemp(join(tmpdir(), 'pgfence-pgbouncer-'));
  await chmod(dir, 0o777);
  const port = await freePort();
  const users = options.users ?? ['postgres'];
  await writeFile(join(dir, 'users.txt'), users.map((u) => `"${u}" ""`).join('\n') + '\n');
  await writeFile(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=127.0.0.1 port=${options.serverPort}`,
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
  await run(
    asRoot ? 'runuser' : PGBOUNCER,
    asRoot ? ['-u', 'postgres', '--', PGBOUNCER, ...args] : args,
  );
  let pid: number | undefined;
  const deadline = performance.now() + 10_000;
  while (pid === undefined) {
    const text = await readFile(join(dir, 'pgbouncer.pid'), 'utf8').catch(() => '');
    const n = Number.parseInt(text, 10);
    if (Number.isInteger(n) && n > 0) pid = n;
    else if (performance.now() > deadline) {
      const log = await readFile(join(dir, 'pgbouncer.log'), 'utf8').catch(() => '');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start: ${log}`);
    } else await sleep(50);
  }
  const started = pid;
  const onExit = () => {
    if (isAlive(started)) process.kill(started, 'SIGKILL');
  };
  process.once('exit', onExit);
  return {
    port,
    url: (database, user = 'postgres') => `postgres://${user}@127.0.0.1:${port}/${database}`,
    async stop() {
      process.off('exit', onExit);
      if (isAlive(started)) {
        process.kill(started, 'SIGTERM');
        if (!(await waitGone(started, 5_000))) process.kill(started, 'SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
