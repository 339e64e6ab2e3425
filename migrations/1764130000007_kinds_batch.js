// pgfence schema: acquire_lease_batch(), many callers' attempts at shared leases, semaphores and
// queued waiters in one statement (one commit), as acquire_leases is for plain leases.
// The SQL is in sql/0008-kinds-batch.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0008-kinds-batch.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0008-kinds-batch.down.sql', await currentSchema(pgm)));
}
