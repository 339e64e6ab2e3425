// pgfence schema, version 3: fencing tokens that stay monotonic across any failover (the
// server's timeline in their high bits; the proof is in the SQL file).
// The SQL is in sql/0003-tokens-terms.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0003-tokens-terms.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0003-tokens-terms.down.sql', await currentSchema(pgm)));
}
