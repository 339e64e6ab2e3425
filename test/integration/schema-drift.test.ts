// test/schema.sql is the schema the migrations install, as pg_dump prints it. This fails when a
// migration changes what is installed without the file being regenerated (and reviewed):
//   PGFENCE_UPDATE_SCHEMA_SQL=1 PGFENCE_TEST_URL=… npx vitest run test/integration/schema-drift.test.ts
//
// The comparison needs a pg_dump of the server's major version (pg_dump refuses newer servers and
// prints older ones differently), and the file is made with PostgreSQL 15's. Where the server is
// another major, or no such pg_dump is installed (the embedded server ships none), only that
// comparison is skipped, saying so; CI also runs the suite against the system PostgreSQL 15 with
// its pg_dump, where it always runs.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedFence, testUrl, type TestFence } from '../support/database.js';
import { dumpSchema, findPgDump } from '../support/schema-dump.js';

const SCHEMA_FILE = new URL('../schema.sql', import.meta.url);
/** The major whose pg_dump wrote test/schema.sql. */
const DUMP_MAJOR = 15;

let t: TestFence;
let major = 0;
let pgDump: string | null = null;

beforeAll(async () => {
  t = await migratedFence();
  const { rows } = await t.pool.query<{ v: string }>(
    `SELECT current_setting('server_version_num') AS v`,
  );
  major = Math.floor(Number(rows[0]!.v) / 10_000);
  pgDump = major === DUMP_MAJOR ? await findPgDump(major) : null;
  if (!pgDump) {
    console.warn(
      `schema-drift: skipped, it needs PostgreSQL ${DUMP_MAJOR} and its pg_dump ` +
        `(server is ${major}, pg_dump ${major === DUMP_MAJOR ? 'not found' : 'not compared'})`,
    );
  }
});

afterAll(async () => {
  await t?.cleanup();
});

describe('test/schema.sql', () => {
  it('is what the migrations install', async (ctx) => {
    if (!pgDump) return ctx.skip();
    const dumped = await dumpSchema(pgDump, testUrl(), t.schema);
    if (process.env.PGFENCE_UPDATE_SCHEMA_SQL === '1') writeFileSync(SCHEMA_FILE, dumped);
    expect(dumped).toBe(readFileSync(SCHEMA_FILE, 'utf8'));
  });
});
