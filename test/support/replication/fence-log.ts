// What the failover tests record, on a server outside the cluster (so it survives whatever the
// cluster loses): every token a caller was given, every fenced write the cluster accepted, the
// fate of every release, every loss a holder noticed, and the test's own markers (kill,
// promoted). Order comes from a sequence drawn in each recording statement, as in the
// mutual-exclusion checker: a fenced write is recorded inside its own transaction, before its
// COMMIT, while is_current's FOR SHARE lock keeps any next term of the key waiting, so a
// recorded write always precedes the next term's writes.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export type LogKind = 'acquired' | 'write' | 'released' | 'lost' | 'marker';

export interface LogRow {
  seq: number;
  atMs: number;
  kind: LogKind;
  key: string;
  holder: string;
  token: bigint | null;
  detail: string | null;
}

export async function createFenceLog(url: string): Promise<string> {
  const schema = `fl_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`CREATE TABLE ${schema}.log (
      seq    bigserial   PRIMARY KEY,
      at     timestamptz NOT NULL DEFAULT clock_timestamp(),
      kind   text        NOT NULL,
      key    text        NOT NULL,
      holder text        NOT NULL,
      token  bigint,
      detail text
    )`);
  } finally {
    await client.end();
  }
  return schema;
}

/** One process's recording connection; its callers' statements go one after another. */
export class FenceLogClient {
  readonly #client: pg.Client;
  readonly #schema: string;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(client: pg.Client, schema: string) {
    this.#client = client;
    this.#schema = schema;
  }

  static async connect(url: string, schema: string): Promise<FenceLogClient> {
    const client = new pg.Client({ connectionString: url, application_name: 'fence-log' });
    client.on('error', () => {});
    await client.connect();
    await client.query('SET synchronous_commit = on');
    return new FenceLogClient(client, schema);
  }

  record(
    kind: LogKind,
    key: string,
    holder: string,
    token?: bigint,
    detail?: string,
  ): Promise<void> {
    const next = this.#tail.then(() =>
      this.#client.query(
        `INSERT INTO ${this.#schema}.log (kind, key, holder, token, detail)
         VALUES ($1, $2, $3, $4, $5)`,
        [kind, key, holder, token === undefined ? null : token.toString(), detail ?? null],
      ),
    );
    this.#tail = next.catch(() => {});
    return next.then(() => {});
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#client.end();
  }
}

export async function readFenceLog(url: string, schema: string): Promise<LogRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{
      seq: string;
      at_ms: string;
      kind: LogKind;
      key: string;
      holder: string;
      token: string | null;
      detail: string | null;
    }>(
      `SELECT seq, (extract(epoch FROM at) * 1000)::text AS at_ms, kind, key, holder,
              token::text AS token, detail
         FROM ${schema}.log ORDER BY seq`,
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      atMs: Number(r.at_ms),
      kind: r.kind,
      key: r.key,
      holder: r.holder,
      token: r.token === null ? null : BigInt(r.token),
      detail: r.detail,
    }));
  } finally {
    await client.end();
  }
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** What the log says about a failover: the figures the README and the report quote. */
export interface FenceFigures {
  acquisitionsBefore: number;
  acquisitionsAfter: number;
  maxTokenBefore: string;
  minTokenAfter: string;
  maxTokenAfter: string;
  /** Token values handed out more than once (each extra time counts). */
  tokensIssuedTwice: number;
  /** Identical (key, token) pairs handed out more than once. */
  keyTokenPairsTwice: number;
  /** Tokens handed out after the failover that are not larger than every token before it. */
  tokensNotLargerAfter: number;
  fencedWrites: number;
  /** Accepted writes whose token is smaller than one already accepted for the key. */
  writesOutOfOrder: number;
  /** (key, token) terms whose writes came from more than one holder. */
  termsWithTwoWriters: number;
  /** Keys that, after the failover, took writes from a stale term or from two holders of one term. */
  keysWithTwoWritersAfter: number;
  /** Leases acquired before the kill and released after it whose release found them gone. */
  leasesLostAtRelease: number;
  /** ms from the kill to the first acquisition or write recorded after the promotion. */
  resumeMs: number | null;
  /** Writes recorded before the kill that the new primary does not have (at most one in flight per caller may be uncommitted). */
  writesMissingAfter: number;
  /** The latest "lost" a holder noticed, in ms after the kill (null: none lost). */
  latestLossNoticedMs: number | null;
}

function marker(rows: LogRow[], name: string): LogRow {
  const row = rows.find((r) => r.kind === 'marker' && r.key === name);
  if (!row) throw new Error(`no "${name}" marker in the log`);
  return row;
}

/**
 * `surviving` is the fenced-writes table as the new primary has it, one `key|token|holder`
 * string per row.
 */
export function analyseFenceLog(rows: LogRow[], surviving: Set<string>): FenceFigures {
  const kill = marker(rows, 'kill');
  const promoted = marker(rows, 'promoted');
  const acquired = rows.filter((r) => r.kind === 'acquired');
  // Acknowledgements between the kill and the promotion can only come from the old primary.
  const before = acquired.filter((r) => r.seq < promoted.seq);
  const after = acquired.filter((r) => r.seq > promoted.seq);
  const tokenCount = new Map<bigint, number>();
  const pairCount = new Map<string, number>();
  for (const r of acquired) {
    tokenCount.set(r.token!, (tokenCount.get(r.token!) ?? 0) + 1);
    const pair = `${r.key}\0${r.token}`;
    pairCount.set(pair, (pairCount.get(pair) ?? 0) + 1);
  }
  const extra = (m: Map<unknown, number>) => [...m.values()].reduce((s, n) => s + n - 1, 0);
  const max = (xs: bigint[]) => xs.reduce((a, b) => (b > a ? b : a), 0n);
  const min = (xs: bigint[]) => xs.reduce((a, b) => (b < a ? b : a), xs[0] ?? 0n);
  const maxBefore = max(before.map((r) => r.token!));

  const writes = rows.filter((r) => r.kind === 'write');
  const lastToken = new Map<string, bigint>();
  const termHolders = new Map<string, Set<string>>();
  const badKeysAfter = new Set<string>();
  let outOfOrder = 0;
  for (const w of writes) {
    const last = lastToken.get(w.key);
    const term = `${w.key}\0${w.token}`;
    let holders = termHolders.get(term);
    if (!holders) termHolders.set(term, (holders = new Set()));
    holders.add(w.holder);
    const stale = last !== undefined && w.token! < last;
    if (stale) outOfOrder += 1;
    else lastToken.set(w.key, w.token!);
    if (w.seq > promoted.seq && (stale || holders.size > 1)) badKeysAfter.add(w.key);
  }

  const acquiredAt = new Map<string, number>();
  for (const r of acquired) acquiredAt.set(`${r.holder}\0${r.key}\0${r.token}`, r.seq);
  const lostAtRelease = rows.filter((r) => {
    if (r.kind !== 'released' || r.detail !== 'false' || r.seq < kill.seq) return false;
    const seq = acquiredAt.get(`${r.holder}\0${r.key}\0${r.token}`);
    return seq !== undefined && seq < kill.seq;
  }).length;

  const firstAfter = rows.find(
    (r) => r.seq > promoted.seq && (r.kind === 'acquired' || r.kind === 'write'),
  );
  const writesMissingAfter = writes.filter(
    (w) => w.seq < kill.seq && !surviving.has(`${w.key}|${w.token}|${w.holder}`),
  ).length;
  const losses = rows.filter((r) => r.kind === 'lost' && r.seq > kill.seq);
  const latestLossNoticedMs =
    losses.length === 0 ? null : Math.round(Math.max(...losses.map((r) => r.atMs)) - kill.atMs);
  return {
    writesMissingAfter,
    latestLossNoticedMs,
    acquisitionsBefore: before.length,
    acquisitionsAfter: after.length,
    maxTokenBefore: maxBefore.toString(),
    minTokenAfter: min(after.map((r) => r.token!)).toString(),
    maxTokenAfter: max(after.map((r) => r.token!)).toString(),
    tokensIssuedTwice: extra(tokenCount),
    keyTokenPairsTwice: extra(pairCount),
    tokensNotLargerAfter: after.filter((r) => r.token! <= maxBefore).length,
    fencedWrites: writes.length,
    writesOutOfOrder: outOfOrder,
    termsWithTwoWriters: [...termHolders.values()].filter((h) => h.size > 1).length,
    keysWithTwoWritersAfter: badKeysAfter.size,
    leasesLostAtRelease: lostAtRelease,
    resumeMs: firstAfter ? Math.round(firstAfter.atMs - kill.atMs) : null,
  };
}

/**
 * The longest time, in ms, that some key of the mutual-exclusion checker's log had more than
 * one holder inside (0: never).
 */
export async function longestOverlapMs(url: string, checkerSchema: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let rows: { key: string; holder: string; kind: string; at_ms: string }[];
  try {
    ({ rows } = await client.query(
      `SELECT key, holder, kind, (extract(epoch FROM at) * 1000)::text AS at_ms
         FROM ${checkerSchema}.events ORDER BY seq`,
    ));
  } finally {
    await client.end();
  }
  const inside = new Map<string, Set<string>>();
  const since = new Map<string, number>();
  let longest = 0;
  for (const r of rows) {
    let holders = inside.get(r.key);
    if (!holders) inside.set(r.key, (holders = new Set()));
    const at = Number(r.at_ms);
    if (r.kind === 'enter') {
      holders.add(r.holder);
      if (holders.size === 2) since.set(r.key, at);
    } else {
      holders.delete(r.holder);
      const start = since.get(r.key);
      if (holders.size < 2 && start !== undefined) {
        longest = Math.max(longest, at - start);
        since.delete(r.key);
      }
    }
  }
  return Math.round(longest);
}
