// A real lossy failover: a primary and a streaming standby (PostgreSQL 15's initdb,
// pg_basebackup and pg_ctl from Debian's postgresql-15, which the embedded server's binaries
// lack), leases taken, replication cut so the standby misses the last ones, the primary stopped
// and the standby promoted. Every token the new primary issues must be larger than every token
// the old one issued, also those it never received. Skipped, saying so, without those binaries.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgFence, type PgFence } from '../../src/index.js';
import { sleep } from '../support/wait.js';

const run = promisify(execFile);
const BIN = process.env.PGFENCE_PG15_BIN ?? '/usr/lib/postgresql/15/bin';
const HAVE_BINARIES = ['initdb', 'pg_ctl', 'pg_basebackup'].every((b) => existsSync(join(BIN, b)));
const AS_ROOT = process.getuid?.() === 0;
const EPOCH = 2n ** 44n;

if (!HAVE_BINARIES)
  console.warn(`token-promotion: skipped, no initdb/pg_ctl/pg_basebackup in ${BIN}`);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Runs a PostgreSQL binary, as the postgres user when we are root (postgres refuses root). */
async function pgBin(name: string, args: string[]): Promise<string> {
  const [file, argv] = AS_ROOT
    ? ['runuser', ['-u', 'postgres', '--', join(BIN, name), ...args]]
    : [join(BIN, name), args];
  const { stdout } = await run(file, argv, { timeout: 60_000 });
  return stdout;
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

describe.skipIf(!HAVE_BINARIES)('tokens across a real lossy promotion', () => {
  let dir = '';
  let primaryPort = 0;
  let standbyPort = 0;
  const started: string[] = [];
  const fences: PgFence[] = [];
  const url = (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgfence-promote-'));
    if (AS_ROOT) await run('chown', ['postgres', dir]);
    primaryPort = await freePort();
    standbyPort = await freePort();
    const primary = join(dir, 'primary');
    await pgBin('initdb', ['-D', primary, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    await appendFile(
      join(primary, 'postgresql.conf'),
      `port = ${primaryPort}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\n` +
        `wal_level = replica\nmax_wal_senders = 4\nfsync = off\n`,
    );
    await pgBin('pg_ctl', ['-D', primary, '-l', join(dir, 'primary.log'), '-w', 'start']);
    started.push(primary);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(fences.map((f) => f.close()));
    for (const data of started) {
      await pgBin('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {});
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('issues only larger tokens on the promoted standby, also for leases it never received', async () => {
    const primaryUrl = url(primaryPort);
    const old = createPgFence({ connectionString: primaryUrl, schema: 'ha', onError: () => {} });
    fences.push(old);
    await old.migrate();
    const kept = await Promise.all(
      Array.from({ length: 10 }, (_, i) => old.tryLease(`kept-${i}`, { ttlMs: 60_000 })),
    );

    const standby = join(dir, 'standby');
    await pgBin('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-D',
      standby,
      '-R',
      '-X',
      'stream',
    ]);
    await appendFile(join(standby, 'postgresql.conf'), `port = ${standbyPort}\n`);
    await pgBin('pg_ctl', ['-D', standby, '-l', join(dir, 'standby.log'), '-w', 'start']);
    started.push(standby);
    await until('the standby streams', async () => {
      const rows = await query<{ n: number }>(
        primaryUrl,
        `SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`,
      );
      return rows[0]!.n === 1;
    });

    // The standby stops receiving (a stalled network): point it at a port nobody listens on.
    // (In postgresql.auto.conf, where pg_basebackup -R wrote the real one: it is read last.)
    await appendFile(
      join(standby, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=1'\n`,
    );
    await pgBin('pg_ctl', ['-D', standby, 'reload']);
    await until('replication is cut', async () => {
      const rows = await query<{ n: number }>(
        primaryUrl,
        `SELECT count(*)::int AS n FROM pg_stat_replication`,
      );
      return rows[0]!.n === 0;
    });
    // Leases the standby will never see: more than the 32 values a sequence logs ahead.
    const lost = await Promise.all(
      Array.from({ length: 60 }, (_, i) => old.tryLease(`lost-${i}`, { ttlMs: 60_000 })),
    );
    const before = [...kept, ...lost].map((l) => l!.token);
    const maxBefore = before.reduce((a, b) => (b > a ? b : a));
    for (const token of before) expect(token / EPOCH).toBe(1n);
    await old.close();
    await pgBin('pg_ctl', ['-D', join(dir, 'primary'), '-m', 'immediate', 'stop']);

    await pgBin('pg_ctl', ['-D', standby, '-w', 'promote']);
    const standbyUrl = url(standbyPort);
    const [counter] = await query<{ counter: string; leases: number }>(
      standbyUrl,
      `SELECT (SELECT last_value FROM ha.fence_token_counter)::text AS counter,
              (SELECT count(*)::int FROM ha.leases) AS leases`,
    );
    // What was lost: the leases, and the counter's advance (without the epoch it would reissue).
    expect(counter!.leases).toBe(10);
    expect(BigInt(counter!.counter) < maxBefore % EPOCH).toBe(true);

    const promoted = createPgFence({
      connectionString: standbyUrl,
      schema: 'ha',
      onError: () => {},
    });
    fences.push(promoted);
    const after = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => promoted.tryLease(`lost-${i}`, { ttlMs: 60_000 })),
      ...Array.from({ length: 5 }, (_, i) => promoted.tryLease(`new-${i}`, { ttlMs: 60_000 })),
    ]);
    for (const lease of after) {
      expect(lease).not.toBeNull();
      expect(lease!.token > maxBefore).toBe(true);
      expect(lease!.token / EPOCH).toBe(2n);
    }
    // The kept leases are still their holders': nobody else gets them.
    expect(await promoted.tryLease('kept-0', { ttlMs: 1_000 })).toBeNull();
    await promoted.close();
  }, 60_000);
});
