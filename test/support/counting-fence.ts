// A PgFence whose pool counts the statements that call each pgfence lease function (acquire_leases,
// renew_leases, release_leases, acquire_lease_batch, release_lease_holders…), for tests of how
// many statements an operation costs.
import { createPgFence, type PgFence } from '../../src/index.js';
import { newPool } from './database.js';

export interface CountingFence {
  fence: PgFence;
  /** How many statements have called the function `fn` so far. */
  calls(fn: string): number;
  /** Every count so far, by function name. */
  counts(): Record<string, number>;
  /** Closes the fence and ends its pool. */
  close(): Promise<void>;
}

/** A PgFence on `schema`, on a pool of its own (of `poolMax` connections) that counts statements. */
export function countingFence(schema: string, poolMax = 10): CountingFence {
  const pool = newPool({ max: poolMax });
  const counts = new Map<string, number>();
  const count = (text: unknown) => {
    const match = /\."?(\w+_lease(?:s|_\w+)?)"?\(/.exec(
      typeof text === 'string' ? text : String((text as { text?: string })?.text),
    );
    if (match) counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + 1);
  };
  // Every statement, pool.query's included, runs through a client's query().
  pool.on('connect', (client) => {
    const clientQuery = client.query.bind(client);
    (client as { query: unknown }).query = (text: unknown, ...rest: unknown[]) => {
      count(text);
      return (clientQuery as (...a: unknown[]) => unknown)(text, ...rest);
    };
  });
  const fence = createPgFence({ pool, schema });
  return {
    fence,
    calls: (fn) => counts.get(fn) ?? 0,
    counts: () => Object.fromEntries(counts),
    close: async () => {
      await fence.close();
      await pool.end();
    },
  };
}
