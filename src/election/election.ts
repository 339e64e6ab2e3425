import type { Database } from '../db/database.js';
import { qualified } from '../db/identifiers.js';
import { InvalidArgumentError, LockTimeoutError } from '../errors.js';
import { validateKey } from '../keys.js';
import { validateSignal } from '../options.js';
import type { LeaseManager } from '../lease/lease-manager.js';
import type { CampaignOptions, Lease, LeaderInfo, ObserveOptions } from '../types.js';
import { Cancellation } from '../util/cancellation.js';
import { refuseUnknownOptions } from '../util/known-options.js';

const CAMPAIGN_OPTIONS = new Set(['value', 'ttlMs', 'signal', 'waitMs']);
const MAX_VALUE_LENGTH = 4_096;
/** Terms of one election kept in its log: an observer further behind resumes at the oldest. */
const TERMS_KEPT = 1_000;

interface LeaderRow {
  owner: string;
  token: string;
  expires_at: Date;
  db_now: Date;
  value: string | null;
}

/**
 * Leader election on leases. A term is a plain lease on the election's name: one leader at a
 * time (guarantee 1), ordered by its fencing token (guarantee 2), lost loudly (guarantee 4).
 * Candidates wait in the key's queue like any lease caller, so the next leader is the longest
 * waiting live candidate. The winner records its term in the election's log (`election_terms`)
 * before `campaign` resolves, which also announces it on the release channel; observers read
 * the log after the last term they yielded beside the current lease, so they yield every term
 * in token order, also one that began and ended between two reads. A term that ends by expiry
 * is seen at its expiry, by the database clock.
 * @internal
 */
export class Election {
  readonly #db: Database;
  readonly #leases: LeaseManager;
  readonly #pollIntervalMs: number;

  constructor(db: Database, leases: LeaseManager, pollIntervalMs: number) {
    this.#db = db;
    this.#leases = leases;
    this.#pollIntervalMs = pollIntervalMs;
  }

  async campaign(name: string, options: CampaignOptions = {}): Promise<Lease> {
    const key = validateKey(name);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('campaign options must be an object');
    }
    refuseUnknownOptions(options, CAMPAIGN_OPTIONS, 'campaign');
    const { value } = options;
    if (value !== undefined && (typeof value !== 'string' || value.length > MAX_VALUE_LENGTH)) {
      throw new InvalidArgumentError(
        `"value" must be a string of at most ${MAX_VALUE_LENGTH} characters`,
      );
    }
    const started = performance.now();
    // The caller's wait (the lease validates it), then what is left of it.
    const askedMs = options.waitMs ?? Infinity;
    let waitMs = askedMs;
    for (;;) {
      const term = await this.#leases
        .lease(key, {
          ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
          waitMs,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
          autoRenew: true,
          metadata: { value: value ?? null },
        })
        .catch((error: unknown) => {
          // After a term given up, the wait went on with what was left: report the caller's.
          if (error instanceof LockTimeoutError && waitMs !== askedMs) {
            throw new LockTimeoutError(key, askedMs, { cause: error });
          }
          throw error;
        });
      // The term is in the log before its leader may act, so observers never miss a term that
      // did anything; the same statement announces it, so they learn of it now, not at a poll.
      let recorded: boolean;
      try {
        const { rows } = await this.#db.query<{ recorded: boolean }>(
          `SELECT ${qualified(this.#db.schema, 'record_term')}($1, $2, $3) AS recorded`,
          [key, term.token.toString(), TERMS_KEPT],
        );
        recorded = rows[0]?.recorded === true;
      } catch (error) {
        await term.release().catch(() => false);
        throw error;
      }
      if (recorded) return term;
      // The term ended before it could be recorded (it outlived its TTL unrenewed, or an
      // operator released it): nobody led in it, so campaign on.
      await term.release().catch(() => false);
      waitMs = Math.max(0, askedMs - (performance.now() - started));
    }
  }

  async leader(name: string): Promise<LeaderInfo | null> {
    return (await this.#read(validateKey(name))).leader;
  }

  async *observe(name: string, options: ObserveOptions = {}): AsyncGenerator<LeaderInfo | null> {
    const key = validateKey(name);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('observe options must be an object: { signal? }');
    }
    const signal = validateSignal(options.signal);
    const subscription = this.#leases.subscribe(key);
    // Ends the sleeps between reads when the signal aborts (an observer has no waitMs).
    const ended = new Cancellation(key, Infinity, [signal]);
    try {
      if (signal?.aborted) return;
      // Where the log stood and who leads now, in one snapshot: a term recorded after it has a
      // larger token, so a later read yields it even if it has ended by then.
      subscription.reset();
      const first = await this.#read(key);
      let seen = first.newest;
      let lastWasNull = first.leader === null;
      if (first.leader) seen = maxToken(seen, first.leader.token);
      if (signal?.aborted) return;
      yield first.leader;
      let expiresInMs = first.expiresInMs;
      while (!signal?.aborted) {
        // Until the poll, the key's next release or a new term's announcement, or the abort
        // (which rejects: the check below ends the iteration).
        const sleepMs = Math.max(5, Math.min(this.#pollIntervalMs, expiresInMs + 5));
        await ended.sleep(sleepMs, subscription.next()).catch(() => {});
        if (signal?.aborted) break;
        subscription.reset();
        const read = await this.#readSince(key, seen);
        for (const term of read.terms) {
          if (signal?.aborted) return;
          seen = term.token;
          lastWasNull = false;
          yield term;
        }
        if (read.current === null && !lastWasNull && read.complete) {
          if (signal?.aborted) return;
          lastWasNull = true;
          yield null;
        }
        // More of the log is waiting: read on at once.
        expiresInMs = read.complete ? read.expiresInMs : -5;
      }
    } finally {
      ended.dispose();
      subscription.close();
    }
  }

  /**
   * The recorded terms after `seen` and the current leader's term if it is later still, in
   * token order, and whether anyone leads now; one snapshot.
   */
  async #readSince(
    key: string,
    seen: bigint | null,
  ): Promise<{
    terms: LeaderInfo[];
    current: LeaderInfo | null;
    expiresInMs: number;
    /** False when the log had more terms after `seen` than one read takes. */
    complete: boolean;
  }> {
    const { rows } = await this.#db.query<LeaderRow & { live: boolean }>(
      `SELECT false AS live, t.owner, t.token::text AS token, t.expires_at,
              clock_timestamp() AS db_now, t.value
       FROM (SELECT * FROM ${qualified(this.#db.schema, 'election_terms')} h
             WHERE h.key = $1 AND ($2::bigint IS NULL OR h.token > $2::bigint)
             ORDER BY h.token LIMIT ${TERMS_KEPT}) t
       UNION ALL
       SELECT true, l.owner, l.token::text, l.expires_at, clock_timestamp(), l.metadata->>'value'
       FROM ${qualified(this.#db.schema, 'leases')} l
       WHERE l.key = $1 AND l.token <> 0 AND l.expires_at > clock_timestamp()`,
      [key, seen === null ? null : seen.toString()],
    );
    const live = rows.find((r) => r.live);
    const current = live ? leaderInfo(live) : null;
    const logged = rows.filter((r) => !r.live);
    // A full read may have left terms between its last and the live one: yield the live term
    // only once the log has been read up to it, so `seen` never passes a term not yet read.
    const complete = logged.length < TERMS_KEPT;
    const lastLogged = logged.reduce<bigint | null>(
      (max, r) => maxToken(max, BigInt(r.token)),
      null,
    );
    const byToken = new Map<bigint, LeaderInfo>();
    for (const row of rows) {
      const term = leaderInfo(row);
      if (seen !== null && term.token <= seen) continue;
      if (row.live && !complete && lastLogged !== null && term.token > lastLogged) continue;
      // The current term as it stands now (renewed since it was recorded).
      if (!byToken.has(term.token) || row.live) byToken.set(term.token, term);
    }
    const terms = [...byToken.values()].sort((a, b) =>
      a.token < b.token ? -1 : a.token > b.token ? 1 : 0,
    );
    return {
      terms,
      current,
      expiresInMs: live ? live.expires_at.getTime() - live.db_now.getTime() : Infinity,
      complete,
    };
  }

  /** Who leads now, and the newest recorded term's token, in one snapshot. */
  async #read(
    key: string,
  ): Promise<{ leader: LeaderInfo | null; expiresInMs: number; newest: bigint | null }> {
    const { rows } = await this.#db.query<LeaderRow & { newest: string | null }>(
      `SELECT (SELECT max(t.token) FROM ${qualified(this.#db.schema, 'election_terms')} t
                WHERE t.key = $1)::text AS newest,
              l.owner, l.token::text AS token, l.expires_at, clock_timestamp() AS db_now,
              l.metadata->>'value' AS value
       FROM (SELECT 1) AS one
       LEFT JOIN ${qualified(this.#db.schema, 'leases')} l
         ON l.key = $1 AND l.token <> 0 AND l.expires_at > clock_timestamp()`,
      [key],
    );
    const row = rows[0];
    const newest = row?.newest == null ? null : BigInt(row.newest);
    if (!row || row.token === null) return { leader: null, expiresInMs: Infinity, newest };
    return {
      leader: leaderInfo(row),
      expiresInMs: row.expires_at.getTime() - row.db_now.getTime(),
      newest,
    };
  }
}

function leaderInfo(row: LeaderRow): LeaderInfo {
  return {
    value: row.value,
    owner: row.owner,
    token: BigInt(row.token),
    expiresAt: row.expires_at,
  };
}

function maxToken(a: bigint | null, b: bigint): bigint {
  return a === null || b > a ? b : a;
}
