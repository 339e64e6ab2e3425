// pgfence schema: a shared or semaphore key's group row counts its holders, so that granting
// and releasing them does not read the key's holder rows (dead ones pile up on a hot key).
// The SQL is in sql/0010-holder-count.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0010-holder-count.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0010-holder-count.down.sql', await currentSchema(pgm)));
}
