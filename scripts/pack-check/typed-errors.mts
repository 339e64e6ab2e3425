// What must not type-check for a user: a PgFence without a connection.
import { createPgFence } from 'pgfence';

export function noConnection(): void {
  // @ts-expect-error -- createPgFence needs `pool` or `connectionString`
  createPgFence({});
}
