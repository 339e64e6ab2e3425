// pgfence schema, version 2: claim_leases, which takes up to N free keys out of a list of
// candidates without ever waiting for another acquirer (job-queue claiming, shard ownership).
// The SQL is in sql/0002-claim.up.sql (and .down.sql), filled for the schema being migrated.
//
// Append-only: never change what a migration that has shipped installs; add a new one instead.
import { currentSchema, loadSql } from './lib/sql-file.js';

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function up(pgm) {
  pgm.sql(loadSql('0002-claim.up.sql', await currentSchema(pgm)));
}

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export async function down(pgm) {
  pgm.sql(loadSql('0002-claim.down.sql', await currentSchema(pgm)));
}
