import type { SessionLockManager } from './advisory/session-lock-manager.js';
import type { Database } from './db/database.js';
import { qualified } from './db/identifiers.js';
import { InvalidArgumentError } from './errors.js';
import { MAX_KEY_LENGTH } from './keys.js';
import type { AdvisoryLockInfo, InspectOptions, Inspection, LeaseInfo } from './types.js';
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

interface LeaseRow {
  key: string;
  owner: string;
  token: string;
  acquired_at: Date;
  expires_at: Date;
  metadata: unknown;
  mode: 'exclusive' | 'shared' | 'semaphore';
  permits: number | null;
  holders: {
    owner: string;
    token: string;
    acquired_at: string;
    expires_at: string;
    metadata: unknown;
  }[];
  waiters: number;
}

interface AdvisoryRow {
  lock_id: string;
  pid: number;
  application_name: string | null;
  granted: boolean;
}

/**
 * Live leases (by the database clock) and the 64-bit advisory locks held or awaited in this
 * database. An advisory lock id is a hash, so its key is known only when this process holds it
 * (`heldKeys()`); with a `prefix`, advisory locks whose key is unknown are left out, since
 * nobody can tell whether they match.
 * @internal
 */
export async function inspect(
  db: Database,
  advisory: SessionLockManager,
  options?: InspectOptions,
): Promise<Inspection> {
  const prefix = validatePrefix(options);
  const [leaseResult, advisoryResult] = await Promise.all([
    db.query<LeaseRow>(
      // A shared or semaphore key's row is its group row (token 0): its holders are listed
      // from lease_holders, each with its own token.
      `SELECT l.key, l.owner, l.token::text AS token, l.acquired_at, l.expires_at, l.metadata,
              CASE WHEN l.token = 0 THEN l.metadata->>'kind' ELSE 'exclusive' END AS mode,
              CASE WHEN l.token = 0 THEN (l.metadata->>'permits')::int END AS permits,
              CASE WHEN l.token = 0 THEN (
                SELECT coalesce(json_agg(json_build_object(
                         'owner', h.owner, 'token', h.token::text, 'acquired_at', h.acquired_at,
                         'expires_at', h.expires_at, 'metadata', h.metadata) ORDER BY h.token), '[]')
                FROM ${qualified(db.schema, 'lease_holders')} h
                WHERE h.key = l.key AND h.expires_at > clock_timestamp())
              END AS holders,
              (SELECT count(*)::int FROM ${qualified(db.schema, 'lease_waiters')} w
               WHERE w.key = l.key AND w.expires_at > clock_timestamp()) AS waiters
       FROM ${qualified(db.schema, 'leases')} l
       WHERE l.expires_at > clock_timestamp() AND l.key LIKE $1 ESCAPE '\\'
       ORDER BY l.key`,
      [likePrefix(prefix)],
    ),
    // Session and transaction advisory locks on one bigint key show up with objsubid 1, the
    // key split into two oids: classid holds the high 32 bits, objid the low ones.
    db.query<AdvisoryRow>(
      `SELECT ((l.classid::bigint << 32) | l.objid::bigint)::text AS lock_id,
              l.pid, a.application_name, l.granted
       FROM pg_locks l
       LEFT JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.objsubid = 1
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       ORDER BY l.granted DESC, l.pid`,
    ),
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
              metadata: row.metadata ?? null,
            },
          ]
        : row.holders.map((h) => ({
            owner: h.owner,
            token: BigInt(h.token),
            acquiredAt: new Date(h.acquired_at),
            expiresAt: new Date(h.expires_at),
            metadata: h.metadata ?? null,
          }));
    const first = holders[0];
    if (!first) continue; // a group whose last holder expired a moment ago
    leases.push({
      key: row.key,
      mode: row.mode,
      permits: row.permits,
      ...first,
      holders,
      waiters: row.waiters,
    });
  }

  const held = advisory.heldKeys();
  const locks: AdvisoryLockInfo[] = [];
  for (const row of advisoryResult.rows) {
    const lockId = BigInt(row.lock_id);
    const key = held.get(lockId) ?? null;
    if (prefix !== '' && !(typeof key === 'string' && key.startsWith(prefix))) continue;
    locks.push({
      key,
      lockId,
      pid: row.pid,
      applicationName: row.application_name,
      granted: row.granted,
    });
  }
  return { leases, advisory: locks };
}
