// A mutual-exclusion checker that sits outside pgfence: holders record entry and exit in a
// table of their own, through their own connection, and the log is analysed afterwards.
// Order comes from a sequence drawn inside each recording statement: a holder records its
// exit before it releases, and the next holder records its entry after it was granted, so
// any real overlap shows as an entry between another holder's entry and exit.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface CheckerFigures {
  acquisitions: number;
  /** Entries made while another holder of the same key had not yet exited. */
  overlaps: number;
  /** Entries whose token was not larger than the previous entry's token for that key. */
  regressions: number;
  /** Entries per holder id. */
  perHolder: Record<string, number>;
  /** Entries per key and holder prefix (the part before the first "/"), for fairness checks. */
  perKeyAndProcess: Record<string, Record<string, number>>;
  /** The most holders a key had at once (semaphores). */
  maxInside: Record<string, number>;
  /**
   * Entries that broke shared/exclusive rules: an exclusive entry while anyone was inside, a
   * shared entry while an exclusive holder was inside (entries without a mode are exclusive).
   */
  modeConflicts: Record<string, number>;
  /** Tokens recorded more than once for a key. */
  duplicateTokens: number;
  /** Exclusive entries whose token was not larger than every token recorded before for the key. */
  exclusiveRegressions: Record<string, number>;
}

/** Creates the checker's table in a schema of its own; returns that schema's name. */
export async function createChecker(url: string): Promise<string> {
  const schema = `mc_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`CREATE TABLE ${schema}.events (
      seq    bigserial PRIMARY KEY,
      key    text   NOT NULL,
      holder text   NOT NULL,
      kind   text   NOT NULL CHECK (kind IN ('enter', 'exit')),
      token  bigint,
      mode   text,
      at     timestamptz NOT NULL DEFAULT clock_timestamp()
    )`);
  } finally {
    await client.end();
  }
  return schema;
}

export async function dropChecker(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** A process's recording connection. */
export class CheckerClient {
  readonly #client: pg.Client;
  readonly #schema: string;
  /** Callers of one process share the connection; their statements go one after another. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(client: pg.Client, schema: string) {
    this.#client = client;
    this.#schema = schema;
  }

  static async connect(url: string, schema: string): Promise<CheckerClient> {
    const client = new pg.Client({ connectionString: url, application_name: 'mutex-checker' });
    client.on('error', () => {});
    await client.connect();
    // The log must survive whatever the test does to the server's other sessions.
    await client.query('SET synchronous_commit = on');
    return new CheckerClient(client, schema);
  }

  #run(text: string, values: unknown[]): Promise<unknown> {
    const next = this.#tail.then(() => this.#client.query(text, values));
    this.#tail = next.catch(() => {});
    return next;
  }

  async enter(
    key: string,
    holder: string,
    token?: bigint,
    mode?: 'shared' | 'exclusive',
  ): Promise<void> {
    await this.#run(
      `INSERT INTO ${this.#schema}.events (key, holder, kind, token, mode) VALUES ($1, $2, 'enter', $3, $4)`,
      [key, holder, token === undefined ? null : token.toString(), mode ?? null],
    );
  }

  async exit(key: string, holder: string): Promise<void> {
    await this.#run(
      `INSERT INTO ${this.#schema}.events (key, holder, kind) VALUES ($1, $2, 'exit')`,
      [key, holder],
    );
  }

  async close(): Promise<void> {
    await this.#client.end();
  }
}

/** Reads the log in sequence order and counts acquisitions, overlaps and token regressions. */
export async function analyseChecker(url: string, schema: string): Promise<CheckerFigures> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let rows: {
    key: string;
    holder: string;
    kind: string;
    token: string | null;
    mode: string | null;
  }[];
  try {
    ({ rows } = await client.query(
      `SELECT key, holder, kind, token::text AS token, mode FROM ${schema}.events ORDER BY seq`,
    ));
  } finally {
    await client.end();
  }
  const inside = new Map<string, Set<string>>();
  const exclusiveInside = new Map<string, Set<string>>();
  const lastToken = new Map<string, bigint>();
  const maxToken = new Map<string, bigint>();
  const tokens = new Map<string, Set<bigint>>();
  const figures: CheckerFigures = {
    acquisitions: 0,
    overlaps: 0,
    regressions: 0,
    perHolder: {},
    perKeyAndProcess: {},
    maxInside: {},
    modeConflicts: {},
    duplicateTokens: 0,
    exclusiveRegressions: {},
  };
  for (const row of rows) {
    let holders = inside.get(row.key);
    if (!holders) inside.set(row.key, (holders = new Set()));
    let exclusive = exclusiveInside.get(row.key);
    if (!exclusive) exclusiveInside.set(row.key, (exclusive = new Set()));
    if (row.kind === 'enter') {
      figures.acquisitions += 1;
      if (holders.size > 0) figures.overlaps += 1;
      const isShared = row.mode === 'shared';
      const conflict = isShared ? exclusive.size > 0 : holders.size > 0;
      figures.modeConflicts[row.key] = (figures.modeConflicts[row.key] ?? 0) + (conflict ? 1 : 0);
      holders.add(row.holder);
      if (!isShared) exclusive.add(row.holder);
      figures.maxInside[row.key] = Math.max(figures.maxInside[row.key] ?? 0, holders.size);
      if (row.token !== null) {
        const token = BigInt(row.token);
        let seen = tokens.get(row.key);
        if (!seen) tokens.set(row.key, (seen = new Set()));
        if (seen.has(token)) figures.duplicateTokens += 1;
        seen.add(token);
        const max = maxToken.get(row.key);
        const regression = !isShared && max !== undefined && token <= max;
        figures.exclusiveRegressions[row.key] =
          (figures.exclusiveRegressions[row.key] ?? 0) + (regression ? 1 : 0);
        if (max === undefined || token > max) maxToken.set(row.key, token);
      }
      figures.perHolder[row.holder] = (figures.perHolder[row.holder] ?? 0) + 1;
      const process = row.holder.split('/')[0]!;
      const perKey = (figures.perKeyAndProcess[row.key] ??= {});
      perKey[process] = (perKey[process] ?? 0) + 1;
      if (row.token !== null) {
        const token = BigInt(row.token);
        const last = lastToken.get(row.key);
        if (last !== undefined && token <= last) figures.regressions += 1;
        lastToken.set(row.key, token);
      }
    } else {
      holders.delete(row.holder);
      exclusive.delete(row.holder);
    }
  }
  return figures;
}
