import type pg from 'pg';

/** How a check came out: `fail` means a guarantee does not hold on this setup. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One finding of `pgfence doctor`. */
export interface Check {
  /** Stable id, for --json readers. */
  id: string;
  status: CheckStatus;
  /** One line: what was found. */
  summary: string;
  /** Why it matters and what to do, in sentences. */
  details: string[];
  /** What was read from the server, as plain values. */
  facts: Record<string, unknown>;
}

/** One statement on a pooled connection, its rows. */
export type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;

export function queryOn(pool: pg.Pool): Query {
  return async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
    (await pool.query<R>(text, values)).rows;
}

/** A duration in ms for people: 250 ms, 30 s, 2 h 11 min. */
export function humanMs(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  const h = Math.floor(ms / 3_600_000);
  return `${h} h ${Math.round((ms - h * 3_600_000) / 60_000)} min`;
}
