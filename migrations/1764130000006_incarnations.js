// pgfence schema: the lock-delay of advisory locks — the server incarnations seen, and
// advisory_grant_delay(), which says how long a new incarnation must wait before it grants.
// The SQL is in sql/0007-incarnations.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0007-incarnations.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0007-incarnations.down.sql', await currentSchema(pgm)));
}
