import type { SessionLockManager } from './advisory/session-lock-manager.js';
import type { Database } from './db/database.js';
import { qualified } from './db/identifiers.js';
import { InvalidArgumentError } from './errors.js';
import { MAX_KEY_LENGTH } from './keys.js';
import type { AdvisoryLockInfo, InspectOptions, Inspection, LeaseInfo } from './types.js';

/** `prefix` as a LIKE pattern matching exactly the strings that start with it (escape `\`). @internal */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/gu, '\\$&')}%`;
}

function validatePrefix(options: InspectOptions | undefined): string {
  if (options === undefined) return '';
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('inspect options must be an object: { prefix? }');
  }
  for (const name of Object.keys(options)) {
    if (name !== 'prefix') throw new InvalidArgumentError(`unknown inspect option "${name}"`);
  }
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
      `SELECT key, owner, token::text AS token, acquired_at, expires_at, metadata
       FROM ${qualified(db.schema, 'leases')}
       WHERE expires_at > clock_timestamp() AND key LIKE $1 ESCAPE '\\'
       ORDER BY key`,
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

  const leases: LeaseInfo[] = leaseResult.rows.map((row) => ({
    key: row.key,
    owner: row.owner,
    token: BigInt(row.token),
    acquiredAt: row.acquired_at,
    expiresAt: row.expires_at,
    metadata: row.metadata ?? null,
  }));

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
