// pgfence schema: a log of election terms, so that observe() yields every term in token order,
// also one that began and ended between two of its reads.
// The SQL is in sql/0013-election-terms.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0013-election-terms.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0013-election-terms.down.sql', await currentSchema(pgm)));
}
