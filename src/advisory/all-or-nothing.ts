import type { LockMode } from '../options.js';
import type { SoloStatement } from './advisory-session.js';
import { GUARD } from './session-identity.js';
import { tryThroughTurnstile } from './turnstile.js';

/**
 * Several keys in one statement, all or nothing: try every key, and if any is busy give back
 * the ones just taken before the statement ends. So between statements the session holds all
 * of them or none, and a caller never holds part of its set while it waits — which is also why
 * two callers asking for overlapping sets in different orders cannot deadlock. `$3` asks first
 * that nobody wait in the server for any of the keys: a session that already holds one shared
 * would otherwise be granted it again at once, past a waiting exclusive caller. Shared keys
 * pass their turnstiles (see turnstile.ts).
 * CTEs with volatile functions are evaluated once each, in full. On another backend than the
 * session's (`GUARD`) `want` is empty, so nothing is taken or given back, and `mine` is false.
 */
function sql(mode: LockMode): string {
  const [lock, unlock] =
    mode === 'shared'
      ? ['pg_try_advisory_lock_shared', 'pg_advisory_unlock_shared']
      : ['pg_try_advisory_lock', 'pg_advisory_unlock'];
  return `WITH want AS (SELECT id FROM unnest($1::int8[]) AS id WHERE ${GUARD}),
  queued AS (
    SELECT $2::bool AND EXISTS (
      SELECT 1 FROM pg_locks l JOIN want w
          ON l.classid = ((w.id >> 32) & 4294967295)::oid AND l.objid = (w.id & 4294967295)::oid
       WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ) AS busy),
  got AS (SELECT id, ${mode === 'shared' ? tryThroughTurnstile('id', `${lock}(id)`) : `${lock}(id)`} AS ok
          FROM want WHERE NOT (SELECT busy FROM queued)),
  undo AS (SELECT ${unlock}(id) FROM got WHERE ok AND EXISTS (SELECT 1 FROM got WHERE NOT ok))
SELECT pg_backend_pid() AS pid, ${GUARD} AS mine,
       NOT (SELECT busy FROM queued) AND NOT EXISTS (SELECT 1 FROM got WHERE NOT ok) AS ok,
       (SELECT count(*) FROM undo) AS undone,
       (SELECT id FROM got WHERE NOT ok LIMIT 1)::text AS blocked`;
}

const TEXT = { exclusive: sql('exclusive'), shared: sql('shared') };

/** What `takeAll` read: whether every key was taken, else one that was busy (if known). @internal */
export interface TakeAllResult {
  all: boolean;
  blocked: bigint | null;
}

/** The statement that takes every id of `ids` or none. @internal */
export function takeAll(
  ids: readonly bigint[],
  mode: LockMode,
  checkQueue: boolean,
): SoloStatement<TakeAllResult> {
  return {
    name: `pgfence_advisory_all_${mode}`,
    text: TEXT[mode],
    values: [ids.map(String), checkQueue],
    read: (row) => ({
      all: row.ok === true,
      blocked: typeof row.blocked === 'string' ? BigInt(row.blocked) : null,
    }),
  };
}
