// Server settings that end pgfence's sessions or statements on their own.
import type { Check, Query } from './check.js';
import { humanMs } from './check.js';

const NAMES = [
  'statement_timeout',
  'lock_timeout',
  'idle_session_timeout',
  'idle_in_transaction_session_timeout',
  'tcp_keepalives_idle',
  'tcp_keepalives_interval',
  'tcp_keepalives_count',
  'tcp_user_timeout',
];

/** pgfence probes an advisory session that holds locks this often, by default. */
const LIVENESS_MS = 2_000;

export async function checkTimeouts(query: Query): Promise<Check> {
  const rows = await query<{ name: string; setting: string; unit: string | null }>(
    `SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)`,
    [NAMES],
  );
  const ms: Record<string, number> = {};
  for (const r of rows) {
    const n = Number(r.setting);
    ms[r.name] = r.unit === 's' ? n * 1_000 : n;
  }
  const get = (name: string) => ms[name] ?? 0;
  const details: string[] = [];
  let status: Check['status'] = 'ok';
  const worse = (s: Check['status']) => {
    if (s === 'fail' || (s === 'warn' && status === 'ok')) status = s;
  };

  const idleSession = get('idle_session_timeout');
  if (idleSession > 0 && idleSession <= LIVENESS_MS) {
    worse('fail');
    details.push(
      `idle_session_timeout = ${humanMs(idleSession)}: the server ends an advisory session between pgfence's liveness probes (every ${humanMs(LIVENESS_MS)}), freeing its locks a moment before the holder can notice. Raise it well above ${humanMs(LIVENESS_MS)} or turn it off for pgfence's role.`,
    );
  } else if (idleSession > 0) {
    worse('warn');
    details.push(
      `idle_session_timeout = ${humanMs(idleSession)}: advisory sessions holding locks are probed every ${humanMs(LIVENESS_MS)} and stay under it; a livenessIntervalMs above it would let the server end them on its own.`,
    );
  }
  const statement = get('statement_timeout');
  if (statement > 0 && statement < 5_000) {
    worse('warn');
    details.push(
      `statement_timeout = ${humanMs(statement)}: on a busy server pgfence's own statements may be cancelled; they then fail with an error, never with a wrong answer.`,
    );
  }
  const lock = get('lock_timeout');
  if (lock > 0 && lock < 5_000) {
    worse('warn');
    details.push(
      `lock_timeout = ${humanMs(lock)}: acquirers of one busy key queue on a row or transaction lock briefly and may fail with lock_timeout errors instead.`,
    );
  }
  const idleTx = get('idle_in_transaction_session_timeout');
  if (idleTx > 0) {
    worse('warn');
    details.push(
      `idle_in_transaction_session_timeout = ${humanMs(idleTx)}: a transaction of yours that sits idle longer is ended with its session, and an xactLock taken in it with it.`,
    );
  }
  const idle = get('tcp_keepalives_idle');
  const interval = get('tcp_keepalives_interval');
  const count = get('tcp_keepalives_count');
  const userTimeout = get('tcp_user_timeout');
  const detectMs = idle > 0 ? idle + interval * count : null;
  if (detectMs !== null && detectMs > 300_000 && !(userTimeout > 0 && userTimeout <= 300_000)) {
    worse('warn');
    details.push(
      `TCP keepalives (idle ${humanMs(idle)}, then ${count} probes every ${humanMs(interval)}): the server notices a client host that vanished only after about ${humanMs(detectMs)}. Its advisory locks stay held that long — never granted twice, but stuck. Leases are not affected (they expire by their TTL). Consider tcp_keepalives_idle = 30, tcp_keepalives_interval = 10, tcp_keepalives_count = 3.`,
    );
  }
  const facts = Object.fromEntries(NAMES.map((n) => [n, ms[n] ?? null]));
  const set = NAMES.filter((n) => n.endsWith('timeout') && get(n) > 0);
  const summary =
    set.length === 0
      ? 'no server timeout ends pgfence’s sessions or statements'
      : set.map((n) => `${n} = ${humanMs(get(n))}`).join(', ');
  return { id: 'timeouts', status, summary, details, facts: { ...facts, unit: 'ms' } };
}
