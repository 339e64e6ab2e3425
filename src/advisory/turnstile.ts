/**
 * Writer preference for `lockAll`. A single exclusive caller that waits stands in
 * PostgreSQL's lock queue for its key, and later shared requests queue behind it. A set of
 * keys cannot stand in several queues at once without holding the keys it is granted while it
 * waits for the rest (guarantee 12 forbids that), so a waiting exclusive `lockAll` holds the
 * _turnstile_ of each key that has kept it waiting instead: a second advisory lock per key
 * that only shared callers pass through, taking it shared and giving it back in the same
 * statement. While a set holds a key's turnstile, shared callers that come after it wait there
 * (in the turnstile's queue, or by polling) and go on once the set has its keys or gives up;
 * exclusive callers, and the holders of the key, are not held up at all.
 *
 * A turnstile is an advisory lock of the two-int4 form (pg_locks objsubid 2), class
 * `TURNSTILE_CLASS` and the key's 64-bit lock id folded to 32 bits, so it never meets a key's
 * own (int8) lock, and what lists or looks for keys (objsubid 1) passes it by.
 *
 * Sets never wait for one another through turnstiles: a set only tries them, and holds nothing
 * else while it waits. What can wait in a circle is a caller that holds one lock and asks for
 * another shared, behind a set that waits for the first one: it waits until one of the two
 * gives up (its `waitMs`), as it would behind a waiting `leaseAll`. A caller that ignores
 * turnstiles (`pg_advisory_lock_shared` by hand) just goes first, as before.
 * @internal
 */

/** The first int4 of every turnstile lock ("PGFT"). */
export const TURNSTILE_CLASS = 0x50474654;

/** The second int4 of the turnstile of the key whose int8 lock id is the SQL `id`. */
const foldSql = (id: string) => `((${id}) # ((${id}) >> 32))::bit(32)::int4`;

/** The turnstile lock's arguments, as SQL, for the key whose int8 lock id is the SQL `id`. */
export const turnstileArgs = (id: string): string => `${TURNSTILE_CLASS}, ${foldSql(id)}`;

/** The turnstile of lock id `id` as pg_locks shows it (classid, objid; objsubid 2). @internal */
export function turnstileLock(id: bigint): { classid: number; objid: number } {
  return { classid: TURNSTILE_CLASS, objid: Number(BigInt.asUintN(32, id ^ (id >> 32n))) };
}

/**
 * SQL that passes the turnstile of lock id `id` (an int8 expression) without waiting, then
 * evaluates `then`; false if a set holds the turnstile. CASE evaluates its branches in order.
 * @internal
 */
export function tryThroughTurnstile(id: string, then: string): string {
  const t = turnstileArgs(id);
  return `CASE WHEN NOT pg_try_advisory_lock_shared(${t}) THEN false
            WHEN pg_advisory_unlock_shared(${t}) THEN ${then} ELSE false END`;
}

/**
 * SQL that waits for the turnstile of lock id `id`, passes it, sets `lock_timeout` to what is
 * left of `timeout` (a statement's wait for each lock is bounded by it anew), then evaluates
 * `then`. `timeout` is the SQL text of a lock_timeout setting: `'<n>ms'`, or `'0'` for none.
 * The locking functions return void, which is not null, so the first branch is never taken;
 * it only orders the wait before the rest. False if giving the turnstile back failed.
 * @internal
 */
export function waitThroughTurnstile(id: string, timeout: string, then: string): string {
  const t = turnstileArgs(id);
  const left = `CASE WHEN ${timeout} = '0' THEN '0' ELSE
      greatest(1, ceil(replace(${timeout}, 'ms', '')::float8
        - 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp())))::bigint || 'ms' END`;
  return `CASE WHEN pg_advisory_lock_shared(${t}) IS NULL THEN NULL
            WHEN NOT pg_advisory_unlock_shared(${t}) THEN false
            WHEN set_config('lock_timeout', ${left}, false) IS NULL THEN false
            ELSE ${then} END`;
}
