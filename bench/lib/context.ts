import pg from 'pg';
import { createPgFence } from '../../src/index.js';
import { createNaiveLeaseTable } from '../baselines/naive-lease.js';
import type { Params } from './params.js';
import type { Report } from './report.js';
import type { VariantEnv } from './variants.js';

/** What every scenario gets: the server, the run's schemas, the sizes, the report. */
export interface BenchContext {
  url: string;
  /** The run's main schema: pgfence migrated into it, plus the naive lease table. */
  schema: string;
  runId: string;
  params: Params;
  redisUrl: string | undefined;
  /** A few connections for setup and checks. */
  admin: pg.Pool;
  report: Report;
  log(line: string): void;
  env(overrides?: Partial<VariantEnv>): VariantEnv;
  /** Another migrated schema of this run (dropped with it), e.g. an empty or a full table. */
  schemaFor(suffix: string): Promise<string>;
}

/** Creates `schema` with pgfence's migrations and the naive lease table. */
export async function prepareSchema(url: string, admin: pg.Pool, schema: string): Promise<void> {
  const fence = createPgFence({ connectionString: url, schema, poolSize: 1 });
  try {
    await fence.migrate();
  } finally {
    await fence.close();
  }
  await createNaiveLeaseTable(admin, schema);
}

export function createContext(options: {
  url: string;
  runId: string;
  params: Params;
  redisUrl: string | undefined;
  report: Report;
  log: (line: string) => void;
}): { context: BenchContext; schemas: string[] } {
  const admin = new pg.Pool({
    connectionString: options.url,
    max: 3,
    application_name: 'pgfence-bench',
  });
  admin.on('error', () => {});
  const schemas = [options.runId];
  let tags = 0;
  const context: BenchContext = {
    url: options.url,
    schema: options.runId,
    runId: options.runId,
    params: options.params,
    redisUrl: options.redisUrl,
    admin,
    report: options.report,
    log: options.log,
    env: (overrides = {}) => ({
      url: options.url,
      schema: options.runId,
      redisUrl: options.redisUrl,
      poolSize: 10,
      tag: `${process.pid}t${(tags += 1)}`,
      ...overrides,
    }),
    schemaFor: async (suffix) => {
      const schema = `${options.runId}_${suffix}`;
      schemas.push(schema);
      await prepareSchema(options.url, admin, schema);
      return schema;
    },
  };
  return { context, schemas };
}
