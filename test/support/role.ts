// A login role of its own for a test, with role-level settings (`ALTER ROLE … SET`) such as a
// user's production role has, and the grants pgfence needs at run time (no superuser).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { testUrl } from './database.js';

export interface TestRole {
  name: string;
  /** The test database's URL, logging in as this role. */
  url: string;
  drop(): Promise<void>;
}

export async function createRole(
  schema: string,
  settings: Record<string, string>,
  options: { connectionLimit?: number } = {},
): Promise<TestRole> {
  const name = `pgfence_role_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  const admin = new pg.Client({ connectionString: testUrl() });
  await admin.connect();
  try {
    const limit = options.connectionLimit ?? -1;
    await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}' CONNECTION LIMIT ${limit}`);
    for (const [setting, value] of Object.entries(settings)) {
      await admin.query(`ALTER ROLE ${name} SET ${setting} = '${value}'`);
    }
    await admin.query(`GRANT USAGE ON SCHEMA "${schema}" TO ${name}`);
    await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA "${schema}" TO ${name}`);
    await admin.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA "${schema}" TO ${name}`);
    await admin.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "${schema}" TO ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testUrl());
  url.username = name;
  url.password = password;
  return {
    name,
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: testUrl() });
      await client.connect();
      try {
        await client.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`,
          [name],
        );
        await client.query(`DROP OWNED BY ${name}`);
        await client.query(`DROP ROLE ${name}`);
      } finally {
        await client.end();
      }
    },
  };
}
