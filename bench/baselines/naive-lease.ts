// The naive lease table: what a team writes in an afternoon. Acquire is one upsert that takes
// the row only when it is free or expired and returns the new token; release is a DELETE
// scoped to that token. Both commit synchronously (the server default), so a cycle pays two
// fsyncs. It is the anchor the lease figures are divided by, so it stays plain on purpose.
import type pg from 'pg';

/** Creates the naive lease table and its token sequence in `schema`. */
export async function createNaiveLeaseTable(
  db: pg.Pool | pg.Client,
  schema: string,
): Promise<void> {
  await db.query(`
    CREATE TABLE IF NOT EXISTS "${schema}".naive_leases (
      key        text        PRIMARY KEY,
      owner      text        NOT NULL,
      token      bigint      NOT NULL,
      expires_at timestamptz NOT NULL
    )`);
  await db.query(`CREATE SEQUENCE IF NOT EXISTS "${schema}".naive_tokens`);
}

/** The two statements of the naive lease, for one schema. */
export class NaiveLease {
  readonly #pool: pg.Pool;
  readonly #acquire: string;
  readonly #release: string;

  constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    const t = `"${schema}".naive_leases`;
    this.#acquire = `
      INSERT INTO ${t} AS l (key, owner, token, expires_at)
      VALUES ($1, $2, nextval('"${schema}".naive_tokens'), clock_timestamp() + $3 * interval '1 millisecond')
      ON CONFLICT (key) DO UPDATE
        SET owner = EXCLUDED.owner, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE l.expires_at <= clock_timestamp()
      RETURNING token`;
    this.#release = `DELETE FROM ${t} WHERE key = $1 AND token = $2`;
  }

  /** The token if the key was free or expired; null if someone holds it. */
  async tryAcquire(key: string, owner: string, ttlMs: number): Promise<string | null> {
    const result = await this.#pool.query<{ token: string }>(this.#acquire, [key, owner, ttlMs]);
    return result.rows[0]?.token ?? null;
  }

  async release(key: string, token: string): Promise<boolean> {
    const result = await this.#pool.query(this.#release, [key, token]);
    return result.rowCount === 1;
  }
}
