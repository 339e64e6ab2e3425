// pgfence schema: a released semaphore permit wakes the waiter it admits (the head of the key's
// queue), not every waiting PgFence.
// The SQL is in sql/0012-wake-permits.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0012-wake-permits.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0012-wake-permits.down.sql', await currentSchema(pgm)));
}
