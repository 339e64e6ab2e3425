// One PostgreSQL 15 server of a replication test, run from the Debian binaries
// (/usr/lib/postgresql/15/bin: the embedded package has no pg_basebackup). As root, every
// binary runs as the `postgres` user, which PostgreSQL requires. A node knows the pids it
// started and stops exactly those.
import { execFile } from 'node:child_process';
import { appendFile, chown, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { isAlive, postmasterPid } from '../postgres-process.js';
import { isGone, waitGone } from '../pids.js';

const run = promisify(execFile);

export const PG_BIN = process.env.PGFENCE_PG15_BIN ?? '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary, as the `postgres` user when we are root. */
async function pgBin(name: string, args: string[]): Promise<string> {
  const file = join(PG_BIN, name);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  try {
    const { stdout } = await run(cmd, argv, { timeout: 120_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** A directory the server user owns. */
async function serverDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(path, Number(stdout.trim()), Number(gid.trim()));
  }
}

/** Settings every node shares. fsync is off: the tests kill processes, never the machine. */
function baseConfig(synchronousStandbyNames: string): string {
  return [
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = ''`,
    `max_connections = 120`,
    `shared_buffers = 16MB`,
    `wal_level = replica`,
    `max_wal_senders = 6`,
    `wal_keep_size = 256MB`,
    `hot_standby = on`,
    `fsync = off`,
    `synchronous_commit = on`,
    `synchronous_standby_names = '${synchronousStandbyNames}'`,
    `wal_receiver_status_interval = 1s`,
    `log_min_messages = warning`,
    '',
  ].join('\n');
}

export class PgNode {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  #pid: number | undefined;

  constructor(name: string, dataDir: string, port: number) {
    this.name = name;
    this.dataDir = dataDir;
    this.port = port;
  }

  /** A superuser URL straight to this node (not through any proxy). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  /** A new primary in `dataDir`. */
  static async init(
    name: string,
    dataDir: string,
    port: number,
    synchronousStandbyNames: string,
  ): Promise<PgNode> {
    await serverDir(dataDir);
    await pgBin('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '-N']);
    await appendFile(join(dataDir, 'postgresql.conf'), baseConfig(synchronousStandbyNames));
    await appendFile(join(dataDir, 'postgresql.auto.conf'), `port = ${port}\n`);
    return new PgNode(name, dataDir, port);
  }

  /**
   * A streaming standby of the server at `sourcePort`, replicating through `replicationPort`
   * (a proxy the test can stall) as `application_name = name`. A promoted standby asks for no
   * synchronous standby of its own, as a failover tool would set it.
   */
  static async standby(
    name: string,
    dataDir: string,
    port: number,
    sourcePort: number,
    replicationPort: number,
  ): Promise<PgNode> {
    await serverDir(dataDir);
    await pgBin('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(sourcePort),
      '-U',
      'postgres',
      '-D',
      dataDir,
      '-X',
      'stream',
      '-c',
      'fast',
      '-N',
    ]);
    await appendFile(
      join(dataDir, 'postgresql.auto.conf'),
      [
        `port = ${port}`,
        `primary_conninfo = 'host=127.0.0.1 port=${replicationPort} user=postgres application_name=${name}'`,
        `synchronous_standby_names = ''`,
        '',
      ].join('\n'),
    );
    await writeFile(join(dataDir, 'standby.signal'), '');
    if (asRoot) await run('chown', ['-R', 'postgres:postgres', dataDir]);
    return new PgNode(name, dataDir, port);
  }

  async start(): Promise<void> {
    await pgBin('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      join(this.dataDir, 'server.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]);
    this.#pid = await postmasterPid(this.dataDir);
  }

  /** One statement on a short-lived superuser connection straight to this node. */
  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** The postmaster's children, from /proc. */
  async children(): Promise<number[]> {
    const pid = this.#pid;
    if (pid === undefined) return [];
    const out: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
      // Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    }
    return out;
  }

  /**
   * SIGKILL the postmaster and every one of its processes at once: a crash in which nothing
   * more is written or sent. The postmaster is frozen first so it forks nothing meanwhile.
   * Resolves once the signals are sent; `gone` resolves when the processes have exited.
   */
  async killAll(): Promise<{ gone: Promise<void> }> {
    const pid = this.#pid;
    if (pid === undefined || !isAlive(pid)) return { gone: Promise.resolve() };
    process.kill(pid, 'SIGSTOP');
    const children = await this.children();
    for (const child of [...children, pid]) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    this.#pid = undefined;
    return { gone: Promise.all([pid, ...children].map((p) => waitGone(p, 10_000))).then(() => {}) };
  }

  /** Promotes this standby and waits until it accepts writes. */
  async promote(): Promise<void> {
    await pgBin('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', 'promote']);
  }

  /** Stops the server at once (SIGQUIT), if it runs. */
  async stop(): Promise<void> {
    const pid = this.#pid;
    if (pid === undefined) return;
    if (isAlive(pid)) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // gone already
      }
      await waitGone(pid, 10_000);
      if (isAlive(pid) && !(await isGone(pid))) await (await this.killAll()).gone;
    }
    this.#pid = undefined;
  }

  /** For a synchronous 'exit' handler: SIGKILL the postmaster, whose children then exit. */
  stopNow(): void {
    if (this.#pid !== undefined && isAlive(this.#pid)) {
      try {
        process.kill(this.#pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}
