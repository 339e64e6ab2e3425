// pgfence schema, version 4: job-queue claiming at the cost of its job — claim_candidates (the
// set-based second half of claim({ from })) and xact_release (completion and release in the
// caller's own transaction, one commit).
// The SQL is in sql/0004-claim-batch.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0004-claim-batch.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0004-claim-batch.down.sql', await currentSchema(pgm)));
}
