// pgfence schema, version 1: the leases table, the fencing-token sequence and the functions
// that acquire, renew, release and check leases in one round trip each.
// The SQL is in sql/0001-leases.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0001-leases.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0001-leases.down.sql', await currentSchema(pgm)));
}
