// What sits between pgfence and the server, and how far apart the clocks are.
import type pg from 'pg';
import type { Check, Query } from './check.js';
import { humanMs } from './check.js';

export async function checkServer(query: Query): Promise<Check> {
  const [row] = await query<{
    version: string;
    user: string;
    database: string;
    in_recovery: boolean;
    server_port: number | null;
  }>(
    `SELECT current_setting('server_version') AS version, current_user AS user,
            current_database() AS database, pg_is_in_recovery() AS in_recovery,
            inet_server_port() AS server_port`,
  );
  const facts = {
    version: row!.version,
    user: row!.user,
    database: row!.database,
    inRecovery: row!.in_recovery,
  };
  if (row!.in_recovery) {
    return {
      id: 'server',
      status: 'fail',
      summary: `PostgreSQL ${row!.version}, a standby (read-only)`,
      details: [
        'pgfence writes on every acquire: point it at the primary (the failover tool’s read-write address).',
      ],
      facts,
    };
  }
  return {
    id: 'server',
    status: 'ok',
    summary: `PostgreSQL ${row!.version}, primary, as ${row!.user} on ${row!.database}`,
    details: [],
    facts,
  };
}

/**
 * A transaction-mode pooler hands each transaction whichever server connection is free. Two
 * client connections show it: while B holds a transaction open, A's next statement must run
 * on another backend than its previous one, or on B's. A plain server (or a session-mode
 * pooler) keeps each client on its own backend.
 */
export async function checkPooler(pool: pg.Pool): Promise<Check> {
  const a = await pool.connect();
  const b = await pool.connect();
  let broken = false;
  const pid = async (client: pg.PoolClient) =>
    (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  try {
    const a1 = await pid(a);
    let b1: number | undefined;
    let statementMode = false;
    try {
      await b.query('BEGIN');
      b1 = await pid(b);
    } catch {
      // "transaction blocks not allowed in statement pooling mode"
      statementMode = true;
    }
    // With a pool of one server connection A waits for B's transaction: end it after a moment.
    const pending = pid(a);
    const early = await Promise.race([
      pending.then((p) => p),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1_000).unref()),
    ]);
    if (!statementMode) await b.query('COMMIT');
    const a2 = early ?? (await pending);
    const a3 = await pid(a);
    const changed = statementMode || a1 !== a2 || a2 !== a3 || a1 === b1;
    const facts = { pids: { a: [a1, a2, a3], b: b1 ?? null }, statementMode };
    if (!changed) {
      return {
        id: 'pooler',
        status: 'ok',
        summary: `sessions are stable: backend ${a1} answered every statement of one connection`,
        details: [
          'Direct connections or a session-mode pooler: session advisory locks are safe. (A session-mode pooler that ends a server connection on its own — KILL, server_lifetime, server_idle_timeout — frees its locks a moment before the holder can notice.)',
        ],
        facts,
      };
    }
    return {
      id: 'pooler',
      status: 'fail',
      summary: statementMode
        ? 'a statement-mode pooler: transactions are refused'
        : `a transaction-mode pooler: one connection's statements ran on backends ${[...new Set([a1, a2, a3])].join(', ')}`,
      details: [
        'Session advisory locks (lock, tryLock, withLock, lockAll, `pgfence run --advisory`) live on one backend: behind a transaction-mode pooler another client can be handed that backend, and a lock can be freed or taken behind its holder’s back. pgfence refuses them once it sees the backend change.',
        'Leases, xactLock and claiming work through it. For advisory locks, give pgfence a direct connection or a session-mode pool (PgBouncer pool_mode = session).',
      ],
      facts,
    };
  } catch (error) {
    broken = true;
    throw error;
  } finally {
    a.release(broken);
    b.release(broken);
  }
}

/** The server's clock against this host's, from the best of a few round trips. */
export async function checkClock(query: Query): Promise<Check> {
  let best = { offsetMs: 0, rttMs: Infinity };
  for (let i = 0; i < 5; i += 1) {
    const sent = Date.now();
    const [row] = await query<{ ms: string }>(
      `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms`,
    );
    const received = Date.now();
    const rttMs = received - sent;
    if (rttMs < best.rttMs) best = { offsetMs: Number(row!.ms) - (sent + received) / 2, rttMs };
  }
  const offset = Math.round(best.offsetMs);
  const facts = { offsetMs: offset, uncertaintyMs: Math.ceil(best.rttMs / 2) };
  const ahead = offset >= 0 ? 'ahead of' : 'behind';
  const summary = `the server's clock is ${humanMs(Math.abs(offset))} ${ahead} this host's (± ${humanMs(best.rttMs / 2)})`;
  const details = [
    'pgfence decides expiry by the database clock alone and times its own deadlines on this process’s monotonic clock, so no offset breaks a guarantee.',
  ];
  if (Math.abs(offset) > 1_000) {
    details.push(
      'Only comparisons you make yourself are off by it: compare lease.expiresAt (a database time) with the database’s clock, not with Date.now().',
    );
    return { id: 'clock', status: 'warn', summary, details, facts };
  }
  return { id: 'clock', status: 'ok', summary, details, facts };
}
