import type { SessionLockManager } from './advisory/session-lock-manager.js';
import type { Database } from './db/database.js';
import { qualified } from './db/identifiers.js';
import { InvalidArgumentError } from './errors.js';
import { MAX_KEY_LENGTH } from './keys.js';
import type {
  AdvisoryLockInfo,
  InspectOptions,
  Inspection,
  LeaseHolderInfo,
  LeaseInfo,
  LeaseWaiterInfo,
} from './types.js';
import { refuseUnknownOptions } from './util/known-options.js';

/** `prefix` as a LIKE pattern matching exactly the strings that start with it (escape `\`). @internal */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/gu, '\\$&')}%`;
}

const INSPECT_OPTIONS = new Set(['prefix']);

function validatePrefix(options: InspectOptions | undefined): string {
  if (options === undefined) return '';
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('inspect options must be an object: { prefix? }');
  }
  refuseUnknownOptions(options, INSPECT_OPTIONS, 'inspect');
  const { prefix = '' } = options;
  if (
    typeof prefix !== 'string' ||
    [...prefix].length > MAX_KEY_LENGTH ||
    prefix.includes('\0') ||
    !prefix.isWellFormed()
  ) {
    throw new InvalidArgumentError(
      `"prefix" must be well-formed text without NUL, at most ${MAX_KEY_LENGTH} characters`,
    );
  }
  return prefix;
}

interface HolderJson {
  owner: string;
  token: string;
  acquired_at: string;
  expires_at: string;
  held_ms: number;
  expires_in_ms: number;
  metadata: unknown;
}

interface WaiterJson {
  owner: string;
  mode: 'exclusive' | 'shared' | 'semaphore';
  permits: number | null;
  enqueued_at: string;
  waiting_ms: number;
}

interface LeaseRow {
  key: string;
  owner: string;
  token: string;
  acquired_at: Date;
  expires_at: Date;
  held_ms: number;
  expires_in_ms: number;
  metadata: unknown;
  mode: 'exclusive' | 'shared' | 'semaphore';
  permits: number | null;
  holders: HolderJson[] | null;
  waiters: WaiterJson[];
}

/** One advisory lock; every column but db_now is null on the one row of an empty pg_locks. */
type AdvisoryRow = { db_now: Date } & (
  | {
      lock_id: string;
      pid: number;
      application_name: string | null;
      granted: boolean;
      mode: string;
      waitstart: Date | null;
      waiting_ms: number | null;
    }
  | { lock_id: null }
);

/** Whole milliseconds between two timestamps, as the database computes them. */
const ms = (from: string, to: string): string =>
  `round(extract(epoch FROM (${to} - ${from})) * 1000)::float8`;

/**
 * Ages and times left are computed here, against one clock_timestamp() per statement: the
 * caller never compares its own clock with the database's (guarantee 3).
 */
function leasesSql(schema: string): string {
  return `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS t)
    SELECT l.key, l.owner, l.token::text AS token, l.acquired_at, l.expires_at, l.metadata,
           ${ms('l.acquired_at', 'n.t')} AS held_ms, ${ms('n.t', 'l.expires_at')} AS expires_in_ms,
           CASE WHEN l.token = 0 THEN l.metadata->>'kind' ELSE 'exclusive' END AS mode,
           CASE WHEN l.token = 0 THEN (l.metadata->>'permits')::int END AS permits,
           -- A shared or semaphore key's row is its group row (token 0): its holders are
           -- listed from lease_holders, each with its own token.
           CASE WHEN l.token = 0 THEN (
             SELECT coalesce(json_agg(json_build_object(
                      'owner', h.owner, 'token', h.token::text, 'acquired_at', h.acquired_at,
                      'expires_at', h.expires_at, 'metadata', h.metadata,
                      'held_ms', ${ms('h.acquired_at', 'n.t')},
                      'expires_in_ms', ${ms('n.t', 'h.expires_at')}) ORDER BY h.token), '[]')
             FROM ${qualified(schema, 'lease_holders')} h
             WHERE h.key = l.key AND h.expires_at > n.t)
           END AS holders,
           -- The queue in its order (the identity is the arrival order).
           (SELECT coalesce(json_agg(json_build_object(
                     'owner', w.owner,
                     'mode', CASE WHEN w.permits IS NULL THEN w.mode ELSE 'semaphore' END,
                     'permits', w.permits, 'enqueued_at', w.enqueued_at,
                     'waiting_ms', ${ms('w.enqueued_at', 'n.t')}) ORDER BY w.id), '[]')
            FROM ${qualified(schema, 'lease_waiters')} w
            WHERE w.key = l.key AND w.expires_at > n.t) AS waiters
    FROM n CROSS JOIN ${qualified(schema, 'leases')} l
    WHERE l.expires_at > n.t AND l.key LIKE $1 ESCAPE '\\'
    ORDER BY l.key`;
}

// Session and transaction advisory locks on one bigint key show up with objsubid 1, the key
// split into two oids: classid holds the high 32 bits, objid the low ones. PostgreSQL records
// when a wait began (waitstart, from version 14) but not when a lock was granted. The outer
// join always yields one row, carrying the database's clock even when no lock is listed.
const ADVISORY_SQL = `WITH n AS MATERIALIZED (SELECT clock_timestamp() AS t)
  SELECT n.t AS db_now, x.* FROM n LEFT JOIN LATERAL (
    SELECT ((l.classid::bigint << 32) | l.objid::bigint)::text AS lock_id,
           l.pid, a.application_name, l.granted, l.mode, l.waitstart,
           CASE WHEN NOT l.granted AND l.waitstart IS NOT NULL
                THEN ${ms('l.waitstart', 'n.t')} END AS waiting_ms
    FROM pg_locks l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  ) x ON true
  ORDER BY x.granted DESC, x.waitstart NULLS FIRST, x.pid`;

const toHolder = (h: HolderJson): LeaseHolderInfo => ({
  owner: h.owner,
  token: BigInt(h.token),
  acquiredAt: new Date(h.acquired_at),
  expiresAt: new Date(h.expires_at),
  heldMs: h.held_ms,
  expiresInMs: h.expires_in_ms,
  metadata: h.metadata ?? null,
});

const toWaiter = (w: WaiterJson): LeaseWaiterInfo => ({
  owner: w.owner,
  mode: w.mode,
  permits: w.permits,
  waitingSince: new Date(w.enqueued_at),
  waitingMs: w.waiting_ms,
});

/**
 * Live leases (by the database clock) with their holders and waiters, and the 64-bit advisory
 * locks held or awaited in this database. An advisory lock id is a hash, so its key is known
 * only when this process holds it (`heldKeys()`); with a `prefix`, advisory locks whose key is
 * unknown are left out, since nobody can tell whether they match.
 * @internal
 */
export async function inspect(
  db: Database,
  advisory: SessionLockManager,
  options?: InspectOptions,
): Promise<Inspection> {
  const prefix = validatePrefix(options);
  const [leaseResult, advisoryResult] = await Promise.all([
    db.query<LeaseRow>(leasesSql(db.schema), [likePrefix(prefix)]),
    db.query<AdvisoryRow>(ADVISORY_SQL),
  ]);

  const leases: LeaseInfo[] = [];
  for (const row of leaseResult.rows) {
    const holders =
      row.holders === null
        ? [
            {
              owner: row.owner,
              token: BigInt(row.token),
              acquiredAt: row.acquired_at,
              expiresAt: row.expires_at,
              heldMs: row.held_ms,
              expiresInMs: row.expires_in_ms,
              metadata: row.metadata ?? null,
            },
          ]
        : row.holders.map(toHolder);
    const first = holders[0];
    if (!first) continue; // a group whose last holder expired a moment ago
    leases.push({
      key: row.key,
      mode: row.mode,
      permits: row.permits,
      ...first,
      holders,
      waiters: row.waiters.map(toWaiter),
    });
  }

  const held = advisory.heldKeys();
  const locks: AdvisoryLockInfo[] = [];
  for (const row of advisoryResult.rows) {
    if (row.lock_id === null) continue; // no advisory lock at all: the row only carries the clock
    const lockId = BigInt(row.lock_id);
    const key = held.get(lockId) ?? null;
    if (prefix !== '' && !(typeof key === 'string' && key.startsWith(prefix))) continue;
    locks.push({
      key,
      lockId,
      mode: row.mode === 'ShareLock' ? 'shared' : 'exclusive',
      pid: row.pid,
      applicationName: row.application_name,
      granted: row.granted,
      waitingSince: row.granted ? null : row.waitstart,
      waitingMs: row.waiting_ms,
    });
  }
  // The advisory statement always yields a row (see ADVISORY_SQL).
  return { at: advisoryResult.rows[0]!.db_now, leases, advisory: locks };
}
