import type { Database } from '../db/database.js';
import { qualified, releasedChannel } from '../db/identifiers.js';
import { InvalidArgumentError } from '../errors.js';
import { validateKey } from '../keys.js';
import { validateSignal } from '../options.js';
import type { LeaseManager } from '../lease/lease-manager.js';
import type { CampaignOptions, Lease, LeaderInfo, ObserveOptions } from '../types.js';
import { refuseUnknownOptions } from '../util/known-options.js';

const CAMPAIGN_OPTIONS = new Set(['value', 'ttlMs', 'signal', 'waitMs']);
const MAX_VALUE_LENGTH = 4_096;

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
 * waiting live candidate. The winner announces its term on the release channel, so observers
 * learn of it at once; a term that ends by expiry is seen at its expiry, by the database clock.
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
    const term = await this.#leases.lease(key, {
      ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
      waitMs: options.waitMs ?? Infinity,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      autoRenew: true,
      metadata: { value: value ?? null },
    });
    // Observers (and `pgfence leader --watch`) learn of the new term now, not at their next poll.
    await this.#db
      .query('SELECT pg_notify($1, $2)', [releasedChannel(this.#db.schema), key])
      .catch(() => {});
    return term;
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
    let last: LeaderInfo | null | undefined;
    try {
      while (!signal?.aborted) {
        subscription.reset();
        const { leader, expiresInMs } = await this.#read(key);
        const changed =
          last === undefined ||
          (leader === null ? last !== null : last === null || leader.token > last.token);
        if (changed) {
          last = leader;
          yield leader;
        }
        const sleepMs = Math.min(this.#pollIntervalMs, expiresInMs + 5);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.max(5, sleepMs));
          function done(): void {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            resolve();
          }
          signal?.addEventListener('abort', done, { once: true });
          void subscription.next().then(done); // next() only ever resolves
        });
      }
    } finally {
      subscription.close();
    }
  }

  async #read(key: string): Promise<{ leader: LeaderInfo | null; expiresInMs: number }> {
    const { rows } = await this.#db.query<LeaderRow>(
      `SELECT owner, token::text AS token, expires_at, clock_timestamp() AS db_now,
              metadata->>'value' AS value
       FROM ${qualified(this.#db.schema, 'leases')}
       WHERE key = $1 AND token <> 0 AND expires_at > clock_timestamp()`,
      [key],
    );
    const row = rows[0];
    if (!row) return { leader: null, expiresInMs: Infinity };
    return {
      leader: {
        value: row.value,
        owner: row.owner,
        token: BigInt(row.token),
        expiresAt: row.expires_at,
      },
      expiresInMs: row.expires_at.getTime() - row.db_now.getTime(),
    };
  }
}
